"""Redis job queue: runs are counted, jobs that kill their worker fail, old jobs and files go."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlsd.errors import NotFoundError
from mlsd.serving.jobs import JobSpec, JobState, wait_for
from mlsd.serving.jobs.redis import RedisJobQueue

pytestmark = pytest.mark.redis


def score(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"score": frame["amount"] * 2})


@pytest.fixture
def queues(redis_url: str, redis_prefix: str, home: Path) -> Iterator[Any]:
    """`make(home=..., **kwargs)`: a RedisJobQueue on the test's prefix; all closed afterwards."""
    made: list[RedisJobQueue] = []

    def make(folder: Path | None = None, **kwargs: Any) -> RedisJobQueue:
        queue = RedisJobQueue(redis_url, folder or home, prefix=f"{redis_prefix}jobs:", **kwargs)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.close()


def lengths(queue: RedisJobQueue) -> tuple[int, int]:
    """(waiting, being run)."""
    client = queue._client
    return int(client.llen(f"{queue.prefix}queue")), int(client.llen(f"{queue.prefix}processing"))


def run_one(queue: RedisJobQueue, amount: float) -> str:
    job_id = queue.submit(JobSpec(rows=[{"amount": amount}]))
    assert wait_for(queue, job_id, 20).state is JobState.DONE
    return job_id


# -- what a client reads ----------------------------------------------------------------------


def test_done_is_readable_only_once_the_result_file_is_durable(
    queues: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsd.serving.jobs import runner

    reached, gate = threading.Event(), threading.Event()
    durable_replace = runner.durable_replace

    def held_replace(tmp: Path, path: Path, *, fsync: bool = True) -> None:
        reached.set()
        assert gate.wait(20)
        durable_replace(tmp, path, fsync=fsync)

    monkeypatch.setattr(runner, "durable_replace", held_replace)
    queue = queues()
    queue.start(score)
    job_id = queue.submit(JobSpec(rows=[{"amount": 1.0}, {"amount": 2.0}]))
    try:
        assert reached.wait(20)  # scored, its result file being written
        shown = queue.get(job_id)
        assert (shown.state, shown.result_path, shown.results) == (JobState.RUNNING, None, None)
    finally:
        gate.set()
    done = wait_for(queue, job_id, 20)
    assert done.state is JobState.DONE
    assert pd.read_parquet(str(done.result_path))["score"].tolist() == [2.0, 4.0]


# -- attempts ---------------------------------------------------------------------------------


def test_a_normal_run_counts_one_attempt(queues: Any) -> None:
    queue = queues()
    job_id = queue.submit(JobSpec(rows=[{"amount": 1.0}]))
    assert queue.get(job_id).attempts == 0
    queue.start(score)
    status = wait_for(queue, job_id, 20)
    assert (status.state, status.attempts) == (JobState.DONE, 1)
    assert status.to_dict()["attempts"] == 1


def test_a_job_that_kills_its_worker_runs_again_with_attempts_2(
    queues: Any, redis_url: str, redis_prefix: str, home: Path
) -> None:
    queue = queues(stale_after_s=0.5)
    job_id = queue.submit(JobSpec(rows=[{"amount": 3.0}]))
    # a real worker in another process takes the job and dies in the model (like an OOM kill)
    worker = (
        "import os, sys, time\n"
        "from mlsd.serving.jobs.redis import RedisJobQueue\n"
        "queue = RedisJobQueue(sys.argv[1], sys.argv[2], prefix=sys.argv[3])\n"
        "queue.start(lambda frame: os._exit(7))\n"
        "time.sleep(30)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", worker, redis_url, str(home), f"{redis_prefix}jobs:"],
        timeout=60,
        check=False,
        capture_output=True,
    )
    assert done.returncode == 7, done.stderr.decode()
    died = queue.get(job_id)
    assert (died.state, died.attempts) == (JobState.RUNNING, 1)
    assert lengths(queue) == (0, 1)
    time.sleep(0.6)
    other = queues(stale_after_s=0.5)
    assert queue.requeue_stale() + other.requeue_stale() == 1, "only one server takes it back"
    requeued = queue.get(job_id)
    assert (requeued.state, requeued.attempts, requeued.started_at) == (JobState.QUEUED, 1, None)
    queue.start(score)
    status = wait_for(queue, job_id, 20)
    assert (status.state, status.attempts, status.results) == (JobState.DONE, 2, [{"score": 6.0}])
    assert lengths(queue) == (0, 0)


def test_a_job_interrupted_max_attempts_times_fails_and_is_not_requeued(queues: Any) -> None:
    queue = queues(stale_after_s=0.2, max_attempts=3, job_ttl_s=100)
    job_id = queue.submit(JobSpec(rows=[{"amount": 1.0}]))
    for attempt in (1, 2, 3):
        # a worker takes the job (counting the run), then dies without beating again
        assert queue._claim() == (job_id, attempt)
        assert queue.requeue_stale() == 0, "the heartbeat is fresh"
        time.sleep(0.25)
        assert queue.requeue_stale() == 1
        expected = JobState.QUEUED if attempt < 3 else JobState.FAILED
        assert queue.get(job_id).state is expected
    status = queue.get(job_id)
    assert status.attempts == 3
    assert status.finished_at is not None
    assert "interrupted 3 times" in (status.error or ""), status.error
    assert lengths(queue) == (0, 0)
    key = f"{queue.prefix}job:{job_id}"
    assert 0 < queue._client.ttl(key) <= 100
    assert queue._client.hget(key, "spec") is None
    assert queue.requeue_stale() == 0
    assert queue._claim() is None

    seen: list[float] = []

    def record(frame: pd.DataFrame) -> pd.DataFrame:
        seen.extend(frame["amount"])
        return score(frame)

    queue.start(record)
    run_one(queue, 5.0)
    assert seen == [5.0], "the failed job is not run again"
    assert queue.get(job_id).state is JobState.FAILED


def test_two_servers_never_claim_the_same_job(queues: Any) -> None:
    first, second = queues(), queues()
    ids = {first.submit(JobSpec(rows=[{"amount": float(i)}])) for i in range(40)}
    claimed: list[list[tuple[str, int]]] = [[], []]

    def drain(queue: RedisJobQueue, into: list[tuple[str, int]]) -> None:
        while (job := queue._claim()) is not None:
            into.append(job)

    threads = [
        threading.Thread(target=drain, args=(q, c))
        for q, c in zip((first, second), claimed, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken = [job_id for part in claimed for job_id, _ in part]
    assert sorted(taken) == sorted(ids)
    assert {attempts for part in claimed for _, attempts in part} == {1}
    assert {first.get(job_id).attempts for job_id in ids} == {1}


# -- keep_jobs and job_ttl_s ------------------------------------------------------------------


def test_forgotten_jobs_lose_their_keys_and_result_file(queues: Any, home: Path) -> None:
    queue = queues(keep_jobs=2)
    queue.start(score)
    jobs = home / "jobs"
    jobs.mkdir(parents=True)
    stranger = jobs / f"{uuid.uuid4().hex}.parquet"  # another queue's job: not ours to delete
    notes = jobs / "notes.parquet"
    for path in (stranger, notes):
        path.write_bytes(b"x")
    ids = [run_one(queue, float(i)) for i in range(3)]
    with pytest.raises(NotFoundError):
        queue.get(ids[0])
    assert not (jobs / f"{ids[0]}.parquet").exists()
    for job_id in ids[1:]:
        assert queue.get(job_id).state is JobState.DONE
        assert (jobs / f"{job_id}.parquet").exists()
    assert stranger.exists()
    assert notes.exists()
    assert queue.delete_forgotten_files() == 0
    assert stranger.exists()


def test_another_servers_result_file_goes_at_that_servers_sweep(
    queues: Any, tmp_path: Path
) -> None:
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    server_a, server_b = queues(home_a, keep_jobs=1), queues(home_b, keep_jobs=1)
    server_a.start(score)
    old = run_one(server_a, 1.0)
    server_a.stop()
    server_b.start(score)
    new = run_one(server_b, 2.0)  # server B forgets the oldest finished job, server A's
    with pytest.raises(NotFoundError):
        server_b.get(old)
    a_files = home_a / "jobs"
    assert (a_files / f"{old}.parquet").exists(), "B cannot reach A's folder"
    (a_files / f".{old}.parquet.tmp").write_bytes(b"x")  # left by an interrupted run
    stranger = a_files / f"{uuid.uuid4().hex}.parquet"
    stranger.write_bytes(b"x")
    assert server_a.delete_forgotten_files() == 2
    assert sorted(p.name for p in a_files.iterdir()) == [stranger.name]
    assert (home_b / "jobs" / f"{new}.parquet").exists()
    assert server_b.get(new).state is JobState.DONE


def test_finished_jobs_older_than_job_ttl_s_are_forgotten(queues: Any, home: Path) -> None:
    queue = queues(job_ttl_s=100, keep_jobs=10)
    queue.start(score)
    old, recent = run_one(queue, 1.0), run_one(queue, 2.0)
    assert queue.forget_old() == []
    queue._client.zadd(f"{queue.prefix}finished", {old: time.time() - 101})
    assert queue.forget_old() == [old]
    with pytest.raises(NotFoundError):
        queue.get(old)
    assert not (home / "jobs" / f"{old}.parquet").exists()
    assert (home / "jobs" / f"{recent}.parquet").exists()
    assert queue._client.zscore(f"{queue.prefix}forgotten", old) is not None


# -- owners and leases ------------------------------------------------------------------------


def test_a_restarted_server_requeues_its_killed_predecessors_job_at_start(
    queues: Any, redis_url: str, redis_prefix: str, home: Path, tmp_path: Path
) -> None:
    """Lease and heartbeat are 60 s here: only the folder's lock (released by the kernel when
    the worker died) can make the restarted server take the job back at once."""
    slow = {"lease_s": 60.0, "stale_after_s": 60.0}
    queue = queues(**slow)
    job_id = queue.submit(JobSpec(rows=[{"amount": 3.0}]))
    worker = (
        "import os, sys\n"
        "from mlsd.serving.jobs.redis import RedisJobQueue\n"
        "queue = RedisJobQueue(sys.argv[1], sys.argv[2], prefix=sys.argv[3], lease_s=60.0,\n"
        "                      stale_after_s=60.0)\n"
        "queue.start(lambda frame: os.kill(os.getpid(), 9))\n"
        "queue._worker.join()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", worker, redis_url, str(home), f"{redis_prefix}jobs:"],
        timeout=60, check=False, capture_output=True,
    )  # fmt: skip
    assert done.returncode == -9, done.stderr.decode()
    assert queue.get(job_id).state is JobState.RUNNING
    elsewhere = queues(tmp_path / "other-server", **slow)
    assert elsewhere.requeue_stale() == 0, "another server: the dead worker's lease is alive"
    queue.start(score)  # the same folder: the lock proves the previous holder dead
    status = wait_for(queue, job_id, 20)
    assert (status.state, status.attempts, status.results) == (JobState.DONE, 2, [{"score": 6.0}])


def test_a_second_server_on_one_folder_does_not_take_the_first_ones_jobs(
    queues: Any, home: Path
) -> None:
    first, second = queues(), queues()
    first.start(score)
    second.start(score)
    assert first.worker_id != second.worker_id
    assert (home / ".jobs-worker-id").read_text() == first.worker_id


def test_a_dead_workers_lease_lapses_and_another_server_takes_its_job(
    queues: Any, tmp_path: Path
) -> None:
    dead = queues(tmp_path / "a", lease_s=0.3, stale_after_s=60.0)
    job_id = dead.submit(JobSpec(rows=[{"amount": 1.0}]))
    assert dead._claim() == (job_id, 1)  # claimed, then its worker dies: no lease renewal
    other = queues(tmp_path / "b", lease_s=0.3, stale_after_s=60.0)
    deadline = time.monotonic() + 20
    while other.requeue_stale() == 0:
        assert time.monotonic() < deadline, "the lease never lapsed"
        time.sleep(0.05)
    assert other.get(job_id).state is JobState.QUEUED
    with pytest.raises(Exception, match=job_id):  # the old worker, were it alive, drops it
        dead._beat(job_id, done=1)


def test_a_job_whose_key_vanished_is_not_found_not_a_remnant(queues: Any) -> None:
    queue = queues()
    job_id = queue.submit(JobSpec(rows=[{"amount": 1.0}]))
    assert queue._claim() == (job_id, 1)
    key = f"{queue.prefix}job:{job_id}"
    queue._client.delete(key)
    queue._client.hset(key, mapping={"done": 5, "heartbeat": time.time()})  # an old writer's
    with pytest.raises(NotFoundError, match="expired or deleted"):
        queue.get(job_id)
    queue._client.delete(key)
    with pytest.raises(Exception, match=job_id):
        queue._beat(job_id, done=6)  # the worker does not recreate it
    assert not queue._client.exists(key)
