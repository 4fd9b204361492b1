"""In-process job queue details, the factory, path checks, status serialisation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from mlsd.errors import ConfigError, NotFoundError, UnavailableError
from mlsd.serving.jobs import JobSpec, JobState, JobStatus, MemoryJobQueue, make_job_queue, wait_for
from mlsd.serving.jobs.base import describe, resolve_in_home
from mlsd.settings import Settings


def test_old_finished_jobs_are_forgotten(tmp_path: Path) -> None:
    queue = MemoryJobQueue(tmp_path, keep_jobs=3)
    queue.start(lambda f: f)
    try:
        ids = [queue.submit(JobSpec(rows=[{"a": i}])) for i in range(3)]
        for job_id in ids:
            wait_for(queue, job_id, 10)
        newest = [queue.submit(JobSpec(rows=[{"a": 9}])) for _ in range(2)]
        assert queue.get(ids[2]).state is JobState.DONE
        with pytest.raises(NotFoundError, match="no job"):
            queue.get(ids[0])
        assert all(queue.get(j) for j in newest)
    finally:
        queue.stop()


def test_start_needs_a_function(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="DataFrame -> DataFrame"):
        MemoryJobQueue(tmp_path).start(object())  # type: ignore[arg-type]


def test_wait_for_times_out(tmp_path: Path) -> None:
    queue = MemoryJobQueue(tmp_path)
    job_id = queue.submit(JobSpec(rows=[{"a": 1}]))
    with pytest.raises(UnavailableError, match="not finished"):
        wait_for(queue, job_id, 0.05)


def test_stop_leaves_queued_jobs_queued(tmp_path: Path) -> None:
    queue = MemoryJobQueue(tmp_path)
    queue.start(lambda f: f)
    queue.stop()
    job_id = queue.submit(JobSpec(rows=[{"a": 1}]))
    assert queue.get(job_id).state is JobState.QUEUED
    queue.start(lambda f: f)
    assert wait_for(queue, job_id, 10).state is JobState.DONE
    queue.stop()


def test_absolute_paths_inside_home_are_fine(tmp_path: Path) -> None:
    target = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(target)
    assert resolve_in_home(tmp_path, str(target)) == target.resolve()
    assert resolve_in_home(tmp_path, "sub/../x.parquet") == target.resolve()


def test_status_progress_and_dict() -> None:
    status = JobStatus("j", JobState.RUNNING, datetime(2026, 1, 1, tzinfo=UTC), total=4, done=1)
    assert status.progress == 0.25
    body = status.to_dict()
    assert body["submitted_at"] == "2026-01-01T00:00:00+00:00"
    assert body["started_at"] is None
    assert body["progress"] == 0.25


def test_describe_names_the_field() -> None:
    from mlsd.errors import ValidationError

    assert describe(ValidationError("bad", field="amount")) == "ValidationError: bad (field amount)"
    assert describe(KeyError("amount")) == "KeyError: 'amount'"


def test_factory(tmp_path: Path) -> None:
    assert isinstance(make_job_queue(Settings(home=tmp_path)), MemoryJobQueue)
    with pytest.raises(ConfigError) as info:
        make_job_queue(Settings(job_queue="amqp://x"))
    assert info.value.field == "job_queue"
