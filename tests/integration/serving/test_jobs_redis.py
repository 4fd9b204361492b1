"""Redis job queue: jobs outlive the process that took them, dead workers' jobs come back."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from mlsd.serving.jobs import JobSpec, JobState, wait_for
from mlsd.serving.jobs.redis import RedisJobQueue

pytestmark = pytest.mark.redis


def score(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"score": frame["amount"] * 2})


def test_a_job_submitted_by_one_process_is_run_by_another(
    redis_url: str, redis_prefix: str, home: Path
) -> None:
    submitter = RedisJobQueue(redis_url, home, prefix=f"{redis_prefix}jobs:")
    job_id = submitter.submit(JobSpec(rows=[{"amount": 1.5}]))
    submitter.close()
    worker = RedisJobQueue(redis_url, home, prefix=f"{redis_prefix}jobs:")
    try:
        worker.start(score)
        status = wait_for(worker, job_id, 20)
        assert status.state is JobState.DONE
        assert status.results == [{"score": 3.0}]
    finally:
        worker.close()


def test_a_dead_workers_job_is_requeued_and_finished(
    redis_url: str, redis_prefix: str, home: Path
) -> None:
    queue = RedisJobQueue(redis_url, home, prefix=f"{redis_prefix}jobs:", stale_after_s=0.5)
    try:
        job_id = queue.submit(JobSpec(rows=[{"amount": 2.0}]))
        # a worker takes the job (its lease lives 5 s), beats once, then hangs
        client = queue._client
        assert queue._claim() == (job_id, 1)
        queue._beat(job_id, done=0)
        assert queue.requeue_stale() == 0  # the heartbeat is fresh
        assert queue.get(job_id).state is JobState.RUNNING
        time.sleep(0.6)
        assert queue.requeue_stale() == 1
        assert queue.get(job_id).state is JobState.QUEUED
        queue.start(score)
        assert wait_for(queue, job_id, 20).results == [{"score": 4.0}]
        assert client.llen(f"{redis_prefix}jobs:processing") == 0
    finally:
        queue.close()


def test_finished_jobs_expire_and_drop_their_input(
    redis_url: str, redis_prefix: str, home: Path
) -> None:
    queue = RedisJobQueue(redis_url, home, prefix=f"{redis_prefix}jobs:", job_ttl_s=100)
    try:
        queue.start(score)
        job_id = queue.submit(JobSpec(rows=[{"amount": 1.0}]))
        wait_for(queue, job_id, 20)
        key = f"{redis_prefix}jobs:job:{job_id}"
        assert 0 < queue._client.ttl(key) <= 100
        assert queue._client.hget(key, "spec") is None
    finally:
        queue.close()
