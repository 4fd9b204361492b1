"""One suite for every job queue backend: in-process and Redis, opened from settings."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from mlsd.backends import open_backend
from mlsd.errors import NotFoundError, ValidationError
from mlsd.serving.jobs import JobQueue, JobSpec, JobState, make_job_queue, wait_for
from mlsd.settings import Settings

Factory = Callable[..., JobQueue]


def score(frame: pd.DataFrame) -> pd.DataFrame:
    """A stand-in model: score = amount / 1000, and which model the job named."""
    return pd.DataFrame(
        {
            "transaction_id": frame["transaction_id"],
            "score": frame["amount"] / 1000.0,
            "model": frame.attrs.get("model") or "default",
        }
    )


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make(request: pytest.FixtureRequest, home: Path) -> Iterator[Factory]:
    made: list[JobQueue] = []
    home.mkdir(parents=True, exist_ok=True)

    def factory(**kwargs: object) -> JobQueue:
        settings = Settings(home=home)
        if request.param == "redis":
            url = request.getfixturevalue("redis_url")
            prefix = request.getfixturevalue("redis_prefix")
            settings = Settings(home=home, job_queue=url, redis_prefix=prefix)
        queue = open_backend("job_queue", settings, **kwargs)
        assert isinstance(queue, JobQueue)
        made.append(queue)
        return queue

    yield factory
    for queue in made:
        queue.stop()
        close = getattr(queue, "close", None)
        if close is not None:
            close()


def rows(n: int) -> list[dict[str, object]]:
    return [{"transaction_id": i, "amount": float(i), "customer_id": i % 7} for i in range(n)]


def test_is_a_job_queue(make: Factory) -> None:
    assert isinstance(make(), JobQueue)


def test_rows_job_runs_to_done_with_inline_results(make: Factory, home: Path) -> None:
    queue = make(chunk_rows=4)
    queue.start(score)
    job_id = queue.submit(JobSpec(rows=rows(10), model="fraud"))
    status = wait_for(queue, job_id, 20)
    assert status.state is JobState.DONE, status.error
    assert (status.total, status.done, status.progress) == (10, 10, 1.0)
    assert status.model == "fraud"
    assert status.results is not None
    assert [r["score"] for r in status.results] == [i / 1000 for i in range(10)]
    assert {r["model"] for r in status.results} == {"fraud"}
    assert status.result_path is not None
    saved = pd.read_parquet(status.result_path)
    assert saved["transaction_id"].tolist() == list(range(10))
    assert Path(status.result_path).is_relative_to(home)
    assert status.started_at is not None
    assert status.finished_at is not None
    assert status.submitted_at <= status.started_at <= status.finished_at
    body = status.to_dict()
    assert body["state"] == "done"
    assert isinstance(body["submitted_at"], str)


def test_parquet_job_writes_results_only_to_a_file(make: Factory, home: Path) -> None:
    (home / "batches").mkdir(parents=True)
    pd.DataFrame(rows(2500)).to_parquet(home / "batches" / "day1.parquet")
    queue = make(inline_rows=1000)
    queue.start(score)
    status = wait_for(queue, queue.submit(JobSpec(path="batches/day1.parquet")), 30)
    assert status.state is JobState.DONE, status.error
    assert status.results is None
    assert status.done == 2500
    assert status.result_path is not None
    assert len(pd.read_parquet(status.result_path)) == 2500


def test_jobs_wait_queued_until_a_worker_starts(make: Factory) -> None:
    queue = make()
    job_id = queue.submit(JobSpec(rows=rows(3)))
    assert queue.get(job_id).state is JobState.QUEUED
    assert queue.get(job_id).progress == 0.0
    queue.start(score)
    assert wait_for(queue, job_id, 20).state is JobState.DONE


def test_a_failing_job_is_failed_and_the_worker_goes_on(make: Factory) -> None:
    queue = make()
    queue.start(score)
    bad = queue.submit(JobSpec(rows=[{"transaction_id": 1}]))  # no amount column
    good = queue.submit(JobSpec(rows=rows(2)))
    failed = wait_for(queue, bad, 20)
    assert failed.state is JobState.FAILED
    assert failed.error is not None
    assert "amount" in failed.error
    assert wait_for(queue, good, 20).state is JobState.DONE


def test_a_scorer_returning_the_wrong_row_count_fails_the_job(make: Factory) -> None:
    queue = make()
    queue.start(lambda frame: frame.head(1))
    status = wait_for(queue, queue.submit(JobSpec(rows=rows(3))), 20)
    assert status.state is JobState.FAILED
    assert "1 rows for 3" in (status.error or "")


def test_jobs_run_in_submission_order(make: Factory) -> None:
    queue = make()
    order: list[int] = []
    lock = threading.Lock()

    def record(frame: pd.DataFrame) -> pd.DataFrame:
        with lock:
            order.append(int(frame["transaction_id"].iloc[0]))
        return score(frame)

    ids = [queue.submit(JobSpec(rows=[{"transaction_id": i, "amount": 1.0}])) for i in range(5)]
    queue.start(record)
    for job_id in ids:
        wait_for(queue, job_id, 20)
    assert order == [0, 1, 2, 3, 4]


def test_unknown_job_is_not_found(make: Factory) -> None:
    with pytest.raises(NotFoundError) as info:
        make().get("nope")
    assert info.value.field == "job_id"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (JobSpec(), "rows"),
        (JobSpec(rows=[{"a": 1}], path="x.parquet"), "rows"),
        (JobSpec(rows=[]), "rows"),
        (JobSpec(rows=[{"a": 1}, 5]), "rows[1]"),  # type: ignore[list-item]
        (JobSpec(rows=[{"a": 1}], model=" "), "model"),
        (JobSpec(path="../outside.parquet"), "path"),
        (JobSpec(path="/etc/passwd"), "path"),
        (JobSpec(path="missing.parquet"), "path"),
        (JobSpec(path="notes.txt"), "path"),
        (JobSpec(path=""), "path"),
    ],
)
def test_bad_specs_name_the_field(make: Factory, spec: JobSpec, field: str, home: Path) -> None:
    (home / "notes.txt").write_text("not parquet")
    (home.parent / "outside.parquet").write_bytes(b"x")
    with pytest.raises(ValidationError) as info:
        make().submit(spec)
    assert info.value.field == field


def test_symlinks_out_of_home_are_refused(make: Factory, home: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.parquet"
    pd.DataFrame(rows(1)).to_parquet(outside)
    (home / "link.parquet").symlink_to(outside)
    with pytest.raises(ValidationError) as info:
        make().submit(JobSpec(path="link.parquet"))
    assert info.value.field == "path"


def test_too_many_rows(make: Factory) -> None:
    with pytest.raises(ValidationError, match="at most 5"):
        make(max_rows=5).submit(JobSpec(rows=rows(6)))


def test_make_job_queue_picks_by_url(make: Factory, request: pytest.FixtureRequest) -> None:
    backend = request.node.callspec.params["make"]
    url = "" if backend == "memory" else request.getfixturevalue("redis_url")
    queue = make_job_queue(Settings(job_queue=url, redis_prefix="mlsdtest:factory:"))
    try:
        assert type(queue).__name__ == (
            "MemoryJobQueue" if backend == "memory" else "RedisJobQueue"
        )
    finally:
        close = getattr(queue, "close", None)
        if close is not None:
            close()


def test_a_file_job_is_capped_at_submit_and_a_non_parquet_file_refused(
    make: Factory, home: Path
) -> None:
    """A 2 M-row file job ran 91 s inside the serving process: files are capped like rows
    (MLSD_JOB_MAX_FILE_ROWS, 1,000,000 by default; small enough to test here)."""
    queue = make(max_file_rows=10)
    pd.DataFrame(rows(11)).to_parquet(home / "big.parquet")
    pd.DataFrame(rows(10)).to_parquet(home / "fits.parquet")
    (home / "fake.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValidationError, match="11 rows") as refused:
        queue.submit(JobSpec(path="big.parquet"))
    assert refused.value.field == "path"
    with pytest.raises(ValidationError, match="not a readable Parquet file"):
        queue.submit(JobSpec(path="fake.parquet"))
    queue.start(score)
    job = queue.submit(JobSpec(path="fits.parquet"))
    assert wait_for(queue, job, 30).state is JobState.DONE


@pytest.mark.parametrize("swapped", ["file", "folder"])
def test_a_file_swapped_for_a_symlink_after_submit_is_not_followed(
    make: Factory, home: Path, tmp_path: Path, swapped: str
) -> None:
    """Checked at submit, opened at run time without following links: the swap fails the
    job (naming the path), and the link's target is never scored."""
    secret = tmp_path / "secret.parquet"
    pd.DataFrame(rows(3)).to_parquet(secret)
    (home / "in").mkdir()
    pd.DataFrame(rows(2)).to_parquet(home / "in" / "batch.parquet")
    queue = make()
    job_id = queue.submit(JobSpec(path="in/batch.parquet"))
    if swapped == "file":
        (home / "in" / "batch.parquet").unlink()
        (home / "in" / "batch.parquet").symlink_to(secret)
    else:
        (home / "in").rename(home / "elsewhere")
        (home / "in").symlink_to(tmp_path, target_is_directory=True)
        secret.rename(tmp_path / "batch.parquet")
    queue.start(score)
    status = wait_for(queue, job_id, 20)
    assert status.state is JobState.FAILED, status
    assert "without following links" in (status.error or ""), status.error
    assert "(field path)" in (status.error or "")


def test_a_file_grown_past_the_cap_after_submit_fails_its_job(make: Factory, home: Path) -> None:
    """The cap (MLSD_JOB_MAX_FILE_ROWS) is checked again on the descriptor the run reads:
    the file checked at submit is under it, the file the run opens over it."""
    pd.DataFrame(rows(2)).to_parquet(home / "batch.parquet")
    queue = make(max_file_rows=4)
    job_id = queue.submit(JobSpec(path="batch.parquet"))
    pd.DataFrame(rows(5)).to_parquet(home / "batch.parquet")
    queue.start(score)
    status = wait_for(queue, job_id, 60)
    assert status.state is JobState.FAILED, status
    assert "per job" in (status.error or ""), status.error
