"""`mlsd worker`: a process that only runs jobs of a shared (Redis) job queue.

A job scored in the serving process competes with online requests for that process's
GIL: a 300 k-row job took the online p99 from 19 to 63 ms (docs/faults.md). A worker
process scores the jobs instead, with the same pipeline, registry, features and
prediction log as a server, at a lower CPU priority (`nice`), while `mlsd serve
--no-job-worker` only takes and answers them. Several workers and servers may share one
queue: jobs are owned under a lease (`mlsd.serving.jobs.redis`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from mlsd.errors import ConfigError
from mlsd.serving.app import build_service
from mlsd.serving.service import ServeOptions, Service
from mlsd.settings import Settings

log = logging.getLogger(__name__)


def check_shared_queue(settings: Settings) -> None:
    """ConfigError unless the job queue is one several processes share (Redis)."""
    if not settings.job_queue:
        raise ConfigError(
            "jobs run in another process only on a shared queue: set MLSD_JOB_QUEUE="
            "redis://host:port/db (the in-process queue is run by `mlsd serve` itself)",
            field="job_queue",
        )


def run_worker(
    settings: Settings,
    options: ServeOptions,
    stop: threading.Event,
    *,
    nice: int = 10,
    on_ready: Callable[[Service], None] | None = None,
) -> bool:
    """Load the models (retried like a server does), run the job worker until `stop` is
    set, then stop it and release everything. False when stopped before the models loaded.
    """
    check_shared_queue(settings)
    service = build_service(settings, options)
    try:
        if nice:
            os.nice(nice)  # a lower priority than the servers on the same machine
        if not service.load_when_available(stop):
            return False
        service.start_jobs()
        if on_ready is not None:
            on_ready(service)
        stop.wait()
        return True
    finally:
        service.close()
