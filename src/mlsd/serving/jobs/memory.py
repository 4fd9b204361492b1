"""The in-process job queue: a `queue.Queue` of ids and one worker thread.

Jobs live in memory: a restart forgets them (their result files stay in the
data folder). Use the Redis queue for jobs that must survive a restart.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from mlsd.errors import NotFoundError
from mlsd.serving.jobs.base import JobSpec, JobState, JobStatus, ScoreFn, describe
from mlsd.serving.jobs.runner import parse_results, run_job

log = logging.getLogger(__name__)


class MemoryJobQueue:
    """Jobs in a dict, ids in a FIFO queue, results under `home/jobs/`."""

    def __init__(
        self,
        home: Path,
        *,
        max_rows: int = 100_000,
        chunk_rows: int = 1024,
        inline_rows: int = 1000,
        keep_jobs: int = 1000,
    ) -> None:
        self.home = Path(home)
        self.results_dir = self.home / "jobs"
        self.max_rows = max_rows
        self.chunk_rows = chunk_rows
        self.inline_rows = inline_rows
        self.keep_jobs = keep_jobs
        self._jobs: dict[str, JobStatus] = {}
        self._specs: dict[str, JobSpec] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    def submit(self, spec: JobSpec) -> str:
        """Validate and enqueue; the id is a random hex string."""
        checked = spec.checked(self.home, self.max_rows)
        job_id = uuid.uuid4().hex
        status = JobStatus(job_id, JobState.QUEUED, datetime.now(UTC), model=spec.model)
        with self._lock:
            self._jobs[job_id] = status
            self._specs[job_id] = checked
            self._forget_old()
        self._queue.put(job_id)
        return job_id

    def get(self, job_id: str) -> JobStatus:
        """The job's status."""
        with self._lock:
            status = self._jobs.get(job_id)
        if status is None:
            raise NotFoundError(f"no job {job_id!r}", field="job_id")
        return status

    def start(self, score_fn: ScoreFn) -> None:
        """Start the worker (once)."""
        if not callable(score_fn):
            raise TypeError("start() needs a function DataFrame -> DataFrame")
        if self._worker is not None and self._worker.is_alive():
            return
        self._worker = threading.Thread(
            target=self._work, args=(score_fn,), name="mlsd-jobs", daemon=True
        )
        self._worker.start()

    def stop(self) -> None:
        """Stop the worker after its current job; queued jobs stay queued."""
        if self._worker is None:
            return
        self._queue.put(None)
        self._worker.join()
        self._worker = None

    def _update(self, job_id: str, **changes: object) -> None:
        with self._lock:
            self._jobs[job_id] = replace(self._jobs[job_id], **changes)  # type: ignore[arg-type]

    def _set_total(self, job_id: str, total: int) -> None:
        self._update(job_id, total=total)

    def _set_done(self, job_id: str, done: int) -> None:
        self._update(job_id, done=done)

    def _work(self, score_fn: ScoreFn) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                spec = self._specs.pop(job_id, None)
            if spec is None:
                continue
            self._update(job_id, state=JobState.RUNNING, started_at=datetime.now(UTC))
            try:
                outcome = run_job(
                    job_id,
                    spec,
                    score_fn,
                    self.results_dir,
                    chunk_rows=self.chunk_rows,
                    inline_rows=self.inline_rows,
                    on_total=partial(self._set_total, job_id),
                    on_progress=partial(self._set_done, job_id),
                )
            except Exception as exc:  # a job failure must not kill the worker: record it
                log.exception("job %s failed", job_id)
                self._update(
                    job_id,
                    state=JobState.FAILED,
                    finished_at=datetime.now(UTC),
                    error=describe(exc),
                )
                continue
            self._update(
                job_id,
                state=JobState.DONE,
                finished_at=datetime.now(UTC),
                done=outcome.rows,
                results=parse_results(outcome.results_json),
                result_path=outcome.result_path,
            )

    def _forget_old(self) -> None:
        finished = [j for j, s in self._jobs.items() if s.state.finished]
        for job_id in finished[: max(0, len(self._jobs) - self.keep_jobs)]:
            del self._jobs[job_id]
