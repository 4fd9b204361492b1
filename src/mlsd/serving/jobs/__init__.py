"""Async inference: scoring jobs queued in process (default) or on Redis, run by a worker."""

from __future__ import annotations

from typing import Any, cast

from mlsd.backends import Opening, open_backend
from mlsd.serving.jobs.base import JobQueue, JobSpec, JobState, JobStatus, ScoreFn, wait_for
from mlsd.serving.jobs.memory import MemoryJobQueue
from mlsd.settings import Settings

__all__ = [
    "JobQueue",
    "JobSpec",
    "JobState",
    "JobStatus",
    "MemoryJobQueue",
    "ScoreFn",
    "make_job_queue",
    "wait_for",
]


def make_job_queue(settings: Settings) -> JobQueue:
    """The queue `settings.job_queue` names: '' in-process, redis://... on Redis."""
    return cast(JobQueue, open_backend("job_queue", settings))


def memory_queue(o: Opening, **options: Any) -> JobQueue:
    """The embedded queue: in this process, results in `home/jobs` (options: its bounds)."""
    options.setdefault("max_file_rows", o.settings.job_max_file_rows)
    return MemoryJobQueue(o.settings.home, **options)


def redis_queue(o: Opening, **options: Any) -> JobQueue:
    """The queue on Redis, under `{prefix}jobs:`; `?timeout_ms=` bounds each call (2 s)."""
    from mlsd.serving.jobs.redis import RedisJobQueue

    timeout = o.url.timeout(2.0)
    options.setdefault("max_file_rows", o.settings.job_max_file_rows)
    return RedisJobQueue(
        o.url.dsn, o.settings.home, prefix=o.key_prefix, socket_timeout_s=timeout, **options
    )
