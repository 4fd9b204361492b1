"""Async inference: scoring jobs queued in process (default) or on Redis, run by a worker."""

from __future__ import annotations

from mlsd.errors import ConfigError
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
    url = settings.job_queue
    if not url:
        return MemoryJobQueue(settings.home)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from mlsd.serving.jobs.redis import RedisJobQueue

        return RedisJobQueue(url, settings.home, prefix=settings.redis_prefix)
    raise ConfigError(f"unsupported job queue URL {url!r}: use '' or redis://", field="job_queue")
