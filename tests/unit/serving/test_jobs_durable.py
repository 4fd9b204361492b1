"""The in-process job queue on disk: a restarted server still knows, and still runs, its jobs."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlsd.errors import NotFoundError, ValidationError
from mlsd.serving.app import create_app
from mlsd.serving.jobs import JobSpec, JobState, MemoryJobQueue, wait_for
from mlsd.serving.service import Service
from mlsd.serving.testing import sample_transaction
from mlsd.settings import Settings

from .conftest import wait_for_job


def double(frame: pd.DataFrame) -> pd.DataFrame:
    """A stand-in model: score = 2 * amount."""
    return pd.DataFrame({"score": frame["amount"] * 2.0})


def amounts(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"amount": float(i)} for i in range(start, start + n)]


def status_file(home: Path, job_id: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((home / "jobs" / f"{job_id}.status.json").read_text())
    return loaded


@pytest.fixture
def queues(home: Path) -> Iterator[Any]:
    """`make(**kwargs)`: a MemoryJobQueue on `home`; all stopped after the test."""
    made: list[MemoryJobQueue] = []

    def make(**kwargs: Any) -> MemoryJobQueue:
        queue = MemoryJobQueue(home, **kwargs)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.stop()


def test_finished_jobs_read_back_as_they_were(queues: Any, home: Path) -> None:
    home.mkdir(parents=True)
    pd.DataFrame(amounts(30)).to_parquet(home / "batch.parquet")
    first = queues(inline_rows=10)
    first.start(double)
    inline = first.submit(JobSpec(rows=amounts(5), model="fraud"))
    in_file = first.submit(JobSpec(path="batch.parquet"))
    failed = first.submit(JobSpec(rows=[{"price": 1.0}]))  # no amount column
    before = {j: wait_for(first, j, 20) for j in (inline, in_file, failed)}
    first.stop()
    assert before[inline].results == [{"score": 2.0 * i} for i in range(5)]
    assert before[in_file].results is None
    assert before[failed].state is JobState.FAILED
    assert sorted((home / "jobs").glob("*.spec.json")) == [], "inputs go once jobs finish"

    second = queues()
    for job_id, status in before.items():
        assert second.get(job_id) == status
    assert len(pd.read_parquet(str(second.get(in_file).result_path))) == 30


def test_queued_jobs_run_after_a_restart_in_submission_order(queues: Any) -> None:
    first = queues()
    ids = [first.submit(JobSpec(rows=amounts(2, start=10 * i))) for i in range(4)]
    assert [first.get(j).state for j in ids] == [JobState.QUEUED] * 4
    first.stop()

    order: list[float] = []
    lock = threading.Lock()

    def record(frame: pd.DataFrame) -> pd.DataFrame:
        with lock:
            order.append(float(frame["amount"].iloc[0]))
        return double(frame)

    second = queues()
    assert [second.get(j).state for j in ids] == [JobState.QUEUED] * 4
    second.start(record)
    done = [wait_for(second, j, 20) for j in ids]
    assert order == [0.0, 10.0, 20.0, 30.0]
    assert [s.results for s in done] == [
        [{"score": 20.0 * i}, {"score": 20.0 * i + 2.0}] for i in range(4)
    ]
    assert [s.attempts for s in done] == [1] * 4
    later = second.submit(JobSpec(rows=amounts(1)))  # numbered after the restored ones
    second.stop()
    assert status_file(second.home, later)["seq"] > max(
        status_file(second.home, j)["seq"] for j in ids
    )


CHILD = """
import sys, time
import pandas as pd
from mlsd.serving.jobs import JobSpec, MemoryJobQueue

def slow(frame):
    time.sleep(0.02)
    return pd.DataFrame({"score": frame["amount"] * 2.0})

queue = MemoryJobQueue(sys.argv[1], chunk_rows=1, progress_every_s=0.0)
running = queue.submit(JobSpec(rows=[{"amount": float(i)} for i in range(500)]))
waiting = queue.submit(JobSpec(rows=[{"amount": 7.0}]))
print(running, waiting, flush=True)
queue.start(slow)
time.sleep(120)
print("finished", flush=True)
"""


def test_a_job_running_in_a_killed_process_is_run_again(queues: Any, home: Path) -> None:
    home.mkdir(parents=True)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home)],
        env={**os.environ, "MLSD_HOME": str(home)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        running, waiting = child.stdout.readline().split()
        deadline = time.monotonic() + 60
        while True:
            assert child.poll() is None, "the child ended before it could be killed"
            assert time.monotonic() < deadline, "the job never got going"
            saved = status_file(home, running)
            if saved["state"] == "running" and saved["done"] >= 5:
                break
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert child.stdout is not None
    child.stdout.close()
    assert saved["done"] < 500, "killed mid-job"
    # what a kill inside run_job's final write could leave: garbage where results go
    (home / "jobs" / f"{running}.parquet").write_bytes(b"half a parquet file")
    (home / "jobs" / f".{running}.parquet.tmp").write_bytes(b"half")

    queue = queues()
    restored = queue.get(running)
    assert (restored.state, restored.done, restored.attempts) == (JobState.QUEUED, 0, 1)
    assert queue.get(waiting).state is JobState.QUEUED
    queue.start(double)
    done = wait_for(queue, running, 30)
    assert done.state is JobState.DONE, done.error
    assert done.attempts == 2, "the status says it was run again"
    assert (done.total, done.done) == (500, 500)
    assert done.results == [{"score": 2.0 * i} for i in range(500)]
    assert pd.read_parquet(str(done.result_path))["score"].tolist() == [2.0 * i for i in range(500)]
    assert wait_for(queue, waiting, 20).results == [{"score": 14.0}]
    assert not (home / "jobs" / f".{running}.parquet.tmp").exists()


def _left_running(home: Path, attempts: int) -> str:
    """Submit a job, then leave its status file as a process killed mid-job would."""
    queue = MemoryJobQueue(home)
    job_id = queue.submit(JobSpec(rows=amounts(3)))
    saved = status_file(home, job_id)
    saved.update(state="running", started_at=saved["submitted_at"], total=3, done=1)
    saved["attempts"] = attempts
    (home / "jobs" / f"{job_id}.status.json").write_text(json.dumps(saved))
    return job_id


def test_a_job_left_running_is_rerun_with_a_warning(
    queues: Any, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = _left_running(home, attempts=1)
    with caplog.at_level(logging.WARNING, logger="mlsd.serving.jobs.memory"):
        queue = queues()
    assert "runs again from the start (attempt 2)" in caplog.text
    assert status_file(home, job_id)["state"] == "queued"
    queue.start(double)
    status = wait_for(queue, job_id, 20)
    assert (status.state, status.attempts) == (JobState.DONE, 2)
    assert status.results == [{"score": 0.0}, {"score": 2.0}, {"score": 4.0}]


def test_a_job_that_keeps_killing_the_server_is_failed(queues: Any, home: Path) -> None:
    job_id = _left_running(home, attempts=3)
    queue = queues(max_attempts=3)
    status = queue.get(job_id)
    assert status.state is JobState.FAILED
    assert "stopped 3 times" in (status.error or "")
    assert queues().get(job_id) == status, "the verdict is saved"


def test_corrupt_status_files_are_skipped_and_kept(
    queues: Any, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = queues()
    first.start(double)
    good = first.submit(JobSpec(rows=amounts(2)))
    wait_for(first, good, 20)
    first.stop()
    queued = first.submit(JobSpec(rows=amounts(1)))  # no worker: stays queued
    jobs = home / "jobs"
    text = (jobs / f"{good}.status.json").read_text()
    bad = {
        "truncated": text[: len(text) // 2],
        "empty": "",
        "list": "[1, 2]",
        "other": text,  # names another job
        "state": text.replace('"state": "done"', '"state": "exploded"'),
        "when": text.replace('"submitted_at": "', '"submitted_at": "not a time'),
        "binary": "\udcff",
    }
    for name, content in bad.items():
        (jobs / f"{name}.status.json").write_text(content, errors="surrogateescape")
    with caplog.at_level(logging.WARNING, logger="mlsd.serving.jobs.store"):
        second = queues()
    assert second.get(good) == first.get(good)
    assert second.get(queued).state is JobState.QUEUED
    for name in bad:
        with pytest.raises(NotFoundError):
            second.get(name)
        assert f"{name}.status.json is unreadable" in caplog.text
        assert (jobs / f"{name}.status.json").exists(), "skipped, not deleted"
    second.start(double)
    assert wait_for(second, queued, 20).state is JobState.DONE


def test_a_queued_job_whose_input_is_lost_fails(queues: Any, home: Path) -> None:
    first = queues()
    lost = first.submit(JobSpec(rows=amounts(1)))
    broken = first.submit(JobSpec(rows=amounts(1)))
    kept = first.submit(JobSpec(rows=amounts(1)))
    (home / "jobs" / f"{lost}.spec.json").unlink()
    (home / "jobs" / f"{broken}.spec.json").write_text('{"rows": [')
    second = queues()
    for job_id in (lost, broken):
        status = second.get(job_id)
        assert status.state is JobState.FAILED
        assert "input file was lost" in (status.error or "")
    second.start(double)
    assert wait_for(second, kept, 20).results == [{"score": 0.0}]


def test_forgotten_jobs_leave_no_files_and_stay_forgotten(queues: Any, home: Path) -> None:
    first = queues(keep_jobs=2)
    first.start(double)
    ids = []
    for i in range(4):
        ids.append(first.submit(JobSpec(rows=amounts(1, start=i))))
        wait_for(first, ids[-1], 20)
    first.stop()
    jobs = home / "jobs"
    for job_id in ids[:2]:
        assert sorted(jobs.glob(f"*{job_id}*")) == [], "status, spec and results deleted"
    for job_id in ids[2:]:
        assert (jobs / f"{job_id}.status.json").exists()
        assert (jobs / f"{job_id}.parquet").exists()
    second = queues(keep_jobs=1)  # a smaller bound applies at start
    with pytest.raises(NotFoundError):
        second.get(ids[1])
    with pytest.raises(NotFoundError):
        second.get(ids[2])
    assert second.get(ids[3]).results == [{"score": 6.0}]
    assert not (jobs / f"{ids[2]}.status.json").exists()


@pytest.mark.parametrize(("every_s", "saved_done"), [(3600.0, 0), (0.0, 3)])
def test_progress_is_saved_at_most_every_interval(
    queues: Any, home: Path, every_s: float, saved_done: int
) -> None:
    reached, gate = threading.Event(), threading.Event()
    calls = 0

    def hold_after_three(frame: pd.DataFrame) -> pd.DataFrame:
        nonlocal calls
        calls += 1
        if calls == 4:  # the third chunk's progress has been reported (and saved, if due)
            reached.set()
            gate.wait(20)
        return double(frame)

    queue = queues(chunk_rows=1, progress_every_s=every_s)
    queue.start(hold_after_three)
    job_id = queue.submit(JobSpec(rows=amounts(5)))
    assert reached.wait(20)
    assert queue.get(job_id).done == 3
    saved = status_file(home, job_id)
    gate.set()
    assert (saved["state"], saved["total"], saved["done"]) == ("running", 5, saved_done)
    assert wait_for(queue, job_id, 20).state is JobState.DONE
    assert status_file(home, job_id)["done"] == 5


def hold_saves_of(
    queue: MemoryJobQueue, state: JobState
) -> tuple[threading.Event, threading.Event]:
    """`(reached, gate)`: saving a `state` status blocks (reached set) until the gate opens."""
    reached, gate = threading.Event(), threading.Event()
    save = queue._store.save_status

    def held(status: Any, seq: int) -> None:
        if status.state is state:
            reached.set()
            assert gate.wait(20)
        save(status, seq)

    queue._store.save_status = held  # type: ignore[method-assign]
    return reached, gate


@pytest.mark.parametrize("state", [JobState.RUNNING, JobState.DONE, JobState.FAILED])
def test_a_state_is_shown_only_once_its_status_file_is_written(
    queues: Any, home: Path, state: JobState
) -> None:
    def score(frame: pd.DataFrame) -> pd.DataFrame:
        if state is JobState.FAILED:
            raise ValueError("no model")
        return double(frame)

    queue = queues()
    reached, gate = hold_saves_of(queue, state)
    queue.start(score)
    job_id = queue.submit(JobSpec(rows=amounts(2)))
    try:
        assert reached.wait(20)
        # the worker has the new state and is writing it: readers still see the one before
        shown = queue.get(job_id)
        assert shown.state is not state
        assert shown.state is (JobState.QUEUED if state is JobState.RUNNING else JobState.RUNNING)
    finally:
        gate.set()
    assert wait_for(queue, job_id, 20).state is (
        JobState.FAILED if state is JobState.FAILED else JobState.DONE
    )
    assert status_file(home, job_id)["state"] == queue.get(job_id).state.value


def test_a_done_job_is_shown_only_once_its_result_file_is_written(
    queues: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsd.serving.jobs import runner

    reached, gate = threading.Event(), threading.Event()

    def held_replace(tmp: Path, path: Path, *, fsync: bool = True) -> None:
        reached.set()
        assert gate.wait(20)
        runner_replace(tmp, path, fsync=fsync)

    runner_replace = runner.durable_replace
    monkeypatch.setattr(runner, "durable_replace", held_replace)
    queue = queues()
    queue.start(double)
    job_id = queue.submit(JobSpec(rows=amounts(2)))
    try:
        assert reached.wait(20)
        assert queue.get(job_id).state is JobState.RUNNING
        assert status_file(home, job_id)["state"] == "running"
    finally:
        gate.set()
    done = wait_for(queue, job_id, 20)
    assert pd.read_parquet(str(done.result_path))["score"].tolist() == [0.0, 2.0]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")
def test_a_durable_replace_syncs_the_file_before_and_its_folder_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsd.serving.jobs.store import durable_replace

    events: list[str] = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd: int) -> None:
        events.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
        fsync(fd)

    def spy_replace(src: Any, dst: Any) -> None:
        events.append(f"replace {Path(src).name} {Path(dst).name}")
        replace(src, dst)

    tmp, final = tmp_path / ".x.tmp", tmp_path / "x"
    tmp.write_text("new")
    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    durable_replace(tmp, final)
    assert events == [f"fsync {tmp}", "replace .x.tmp x", f"fsync {tmp_path}"]
    assert final.read_text() == "new"


def test_a_state_the_disk_refuses_is_never_shown(queues: Any, home: Path) -> None:
    queue = queues()
    save = queue._store.save_status

    def refuse_done(status: Any, seq: int) -> None:
        if status.state is JobState.DONE:
            raise OSError(28, "No space left on device")
        save(status, seq)

    queue._store.save_status = refuse_done  # type: ignore[method-assign]
    queue.start(double)
    job_id = queue.submit(JobSpec(rows=amounts(2)))
    failed = wait_for(queue, job_id, 20)
    assert failed.state is JobState.FAILED
    assert failed.error is not None
    assert "cannot save" in failed.error
    assert "No space left" in failed.error
    assert (failed.results, failed.result_path) == (None, None)
    assert status_file(home, job_id)["state"] == "failed"  # the failure itself was saved
    assert not (home / "jobs" / f"{job_id}.spec.json").exists()


def test_a_job_whose_every_save_fails_runs_again_after_a_restart(queues: Any, home: Path) -> None:
    first = queues()
    save = first._store.save_status

    def refuse_finished(status: Any, seq: int) -> None:
        if status.state.finished:
            raise OSError(5, "Input/output error")
        save(status, seq)

    first._store.save_status = refuse_finished  # type: ignore[method-assign]
    first.start(double)
    job_id = first.submit(JobSpec(rows=amounts(2)))
    assert wait_for(first, job_id, 20).state is JobState.FAILED  # shown, not saved
    first.stop()
    assert status_file(home, job_id)["state"] == "running"
    second = queues()
    second.start(double)
    again = wait_for(second, job_id, 20)
    assert (again.state, again.results, again.attempts) == (
        JobState.DONE,
        [{"score": 0.0}, {"score": 2.0}],
        2,
    )


def test_rows_json_cannot_hold_are_refused(queues: Any) -> None:
    with pytest.raises(ValidationError) as info:
        queues().submit(JobSpec(rows=[{"amount": 1.0, "blob": object()}]))
    assert info.value.field == "rows"


def test_http_job_status_survives_a_restart_and_queued_jobs_score_the_same(
    settings: Settings, service: Service, build_service: Any, store: Any, make_client: Any
) -> None:
    client = make_client(create_app(settings, service=service))
    rows = [sample_transaction(transaction_id=i, amount=10.0 * i) for i in range(1, 4)]
    job_id = client.post("/v1/jobs", json={"rows": rows}).json()["job_id"]
    before = wait_for_job(client, job_id)
    assert before["state"] == "done", before
    # a state is shown only once it is on disk: what the client saw is what a restart reads
    assert status_file(settings.home, job_id)["state"] == "done"
    # rows as the route hands them over (datetimes), queued but not run before the restart
    from mlsd.serving.schemas import TransactionBody

    dumped = [TransactionBody.model_validate(r).model_dump() for r in rows]
    queued = MemoryJobQueue(settings.home).submit(JobSpec(rows=dumped))

    restarted = make_client(create_app(settings, service=build_service(store)))
    assert restarted.get(f"/v1/jobs/{job_id}").json() == before
    after = wait_for_job(restarted, queued)
    assert after["state"] == "done", after
    assert [(r["transaction_id"], r["score"], r["decision"]) for r in after["results"]] == [
        (r["transaction_id"], r["score"], r["decision"]) for r in before["results"]
    ]
