"""The in-process job queue: a `queue.Queue` of ids and one worker thread, kept on disk.

Each job's status is saved in `home/jobs/` (see `store.py`) whenever its state
changes, and its progress at most every `progress_every_s`; an unfinished job's
input is saved beside it. A state is published (what `get` and so GET /v1/jobs/{id}
answer) only once its status file, and a done job's result file, are durably
written: whatever a client saw survives a restart. Only the `done` counter moves
between saves (a restart runs a running job again from the start anyway). When the
disk refuses a state, the job is shown failed with the disk error instead (saved
if the disk takes it; if not, a restart runs the job again).

A new queue on the same folder (a restarted server) answers for finished jobs as
before, queues unfinished ones again in submission order, and re-runs from the
start a job that was running when the process died
(its `attempts` goes up; at `max_attempts` it is failed instead, so a job that
kills the server cannot do so forever). `keep_jobs` bounds what is kept: a
forgotten job's files go, its result file too (only its status named that file).
One server process per data folder; the Redis queue shares jobs between processes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from mlsd.errors import NotFoundError, UnavailableError
from mlsd.serving.jobs.base import MAX_FILE_ROWS, JobSpec, JobState, JobStatus, ScoreFn, describe
from mlsd.serving.jobs.runner import parse_results, run_job
from mlsd.serving.jobs.store import JobStore

log = logging.getLogger(__name__)


class MemoryJobQueue:
    """Jobs in a dict, ids in a FIFO queue, statuses and results under `home/jobs/`."""

    def __init__(
        self,
        home: Path,
        *,
        max_rows: int = 100_000,
        max_file_rows: int = MAX_FILE_ROWS,
        chunk_rows: int = 1024,
        inline_rows: int = 1000,
        keep_jobs: int = 1000,
        progress_every_s: float = 1.0,
        max_attempts: int = 3,
        fsync: bool = True,
    ) -> None:
        self.home = Path(home)
        self.results_dir = self.home / "jobs"
        self.max_rows = max_rows
        self.max_file_rows = max_file_rows
        self.chunk_rows = chunk_rows
        self.inline_rows = inline_rows
        self.keep_jobs = keep_jobs
        self.progress_every_s = progress_every_s
        self.max_attempts = max_attempts
        self._store = JobStore(self.results_dir, fsync=fsync)
        self._jobs: dict[str, JobStatus] = {}
        self._specs: dict[str, JobSpec] = {}
        self._seqs: dict[str, int] = {}
        self._next_seq = 0
        self._last_saved = 0.0
        self._lock = threading.Lock()  # the dicts; never held during disk I/O
        self._disk = threading.Lock()  # a status change and its file write, as one step
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._restore()

    def submit(self, spec: JobSpec) -> str:
        """Validate, save to disk and enqueue; the id is a random hex string."""
        checked = spec.checked(self.home, self.max_rows, self.max_file_rows)
        job_id = uuid.uuid4().hex
        status = JobStatus(job_id, JobState.QUEUED, datetime.now(UTC), model=spec.model, attempts=0)
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
        self._store.save_spec(job_id, checked)
        try:
            with self._disk:
                self._store.save_status(status, seq)
        except OSError as exc:
            self._store.drop_spec(job_id)
            raise UnavailableError(f"cannot save the job in {self.results_dir}: {exc}") from exc
        with self._lock:
            self._jobs[job_id] = status
            self._specs[job_id] = checked
            self._seqs[job_id] = seq
            forgotten = self._forget_old()
        self._queue.put(job_id)
        self._delete(forgotten)
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
        """Stop the worker after its current job; queued jobs stay queued (and on disk)."""
        if self._worker is None:
            return
        self._queue.put(None)
        self._worker.join()
        self._worker = None

    # -- restart ------------------------------------------------------------------------------

    def _restore(self) -> None:
        """Read the folder back: finished jobs as they were, unfinished ones queued again."""
        requeued = 0
        for stored in self._store.load():
            job_id, status = stored.status.job_id, stored.status
            self._next_seq = max(self._next_seq, stored.seq + 1)
            self._seqs[job_id] = stored.seq
            if status.state.finished:
                self._jobs[job_id] = status
                self._store.drop_spec(job_id)  # left by a kill between the job's last writes
                continue
            status = self._after_restart(status, stored.spec)
            if status != stored.status:
                try:
                    self._save(status, stored.seq)
                except OSError as exc:
                    log.warning("job %s: cannot save its status: %s", job_id, exc)
            self._jobs[job_id] = status
            if stored.spec is not None and status.state is JobState.QUEUED:
                self._specs[job_id] = stored.spec
                self._queue.put(job_id)
                requeued += 1
        forgotten = self._forget_old()
        self._delete(forgotten)
        if self._jobs:
            log.info(
                "%d jobs read back from %s, %d queued again", len(self._jobs), self.results_dir,
                requeued,
            )  # fmt: skip

    def _after_restart(self, status: JobStatus, spec: JobSpec | None) -> JobStatus:
        """An unfinished job's status once the process that had it is gone."""
        now = datetime.now(UTC)
        if spec is None:
            return replace(
                status, state=JobState.FAILED, finished_at=now,
                error="the job's input file was lost across a server restart",
            )  # fmt: skip
        if status.state is not JobState.RUNNING:
            return status
        attempts = status.attempts or 1
        if attempts >= self.max_attempts:
            log.error("job %s: the server stopped %d times running it", status.job_id, attempts)
            return replace(
                status, state=JobState.FAILED, finished_at=now,
                error=f"the server stopped {attempts} times while running this job: not run again",
            )  # fmt: skip
        log.warning(
            "job %s was running when the server stopped: it runs again from the start (attempt %d)",
            status.job_id, attempts + 1,
        )  # fmt: skip
        return replace(status, state=JobState.QUEUED, started_at=None, total=None, done=0)

    # -- worker -------------------------------------------------------------------------------

    def _save(self, status: JobStatus, seq: int) -> None:
        """Write the status file (durably); OSError when the disk refuses it."""
        try:
            self._store.save_status(status, seq)
        finally:
            self._last_saved = time.monotonic()

    def _update(self, job_id: str, *, save: bool = True, **changes: object) -> bool:
        """Change the job's status; with `save`, published only once its file is durable.

        A status the disk refuses is not published: the job is failed with the disk error.
        False when the status published is not the one on disk (or nothing changed).
        """
        with self._disk:
            with self._lock:
                current = self._jobs.get(job_id)
                if current is None or current.state.finished:  # forgotten, or failed by disk
                    return False
                status = replace(current, **changes)  # type: ignore[arg-type]
                seq = self._seqs[job_id]
            saved = save
            if save:
                try:
                    self._save(status, seq)
                except OSError as exc:
                    status, saved = self._unsaved(status, seq, exc)
            with self._lock:
                if job_id in self._jobs:  # not forgotten meanwhile
                    self._jobs[job_id] = status
        return saved

    def _unsaved(self, status: JobStatus, seq: int, exc: OSError) -> tuple[JobStatus, bool]:
        """The job failed, as its `status` cannot be saved (disk lock held); saved, or not."""
        log.error("job %s: cannot save its %s status, failed: %s", status.job_id, status.state, exc)
        failed = replace(
            status, state=JobState.FAILED, finished_at=datetime.now(UTC), results=None,
            result_path=None, error=f"cannot save the job's status in {self.results_dir}: {exc}",
        )  # fmt: skip
        try:
            self._save(failed, seq)
        except OSError as again:
            log.error("job %s: cannot save its failure either: %s", status.job_id, again)
            return failed, False
        return failed, True

    def _set_total(self, job_id: str, total: int) -> None:
        self._update(job_id, total=total)
        self._check_running(job_id)

    def _set_done(self, job_id: str, done: int) -> None:
        due = time.monotonic() - self._last_saved >= self.progress_every_s
        self._update(job_id, save=due, done=done)
        self._check_running(job_id)

    def _check_running(self, job_id: str) -> None:
        """Stop `run_job` (by raising) once the job failed because its status cannot be saved."""
        if not self._running(job_id):
            raise UnavailableError(f"job {job_id}: its status cannot be saved, stopped")

    def _running(self, job_id: str) -> bool:
        with self._lock:
            status = self._jobs.get(job_id)
        return status is not None and status.state is JobState.RUNNING

    def _work(self, score_fn: ScoreFn) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                spec = self._specs.pop(job_id, None)
                status = self._jobs.get(job_id)
            if spec is None or status is None:
                continue
            attempts = (status.attempts or 0) + 1
            saved = self._update(
                job_id, state=JobState.RUNNING, started_at=datetime.now(UTC), attempts=attempts
            )
            if not self._running(job_id):  # its running status could not be saved: failed
                if saved:  # the failure is on disk; otherwise a restart runs the job again
                    self._store.drop_spec(job_id)
                continue
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
                    fsync=self._store.fsync,
                    attempt=attempts,
                    home=self.home,
                    max_file_rows=self.max_file_rows,
                    since=status.submitted_at,
                )
            except Exception as exc:  # a job failure must not kill the worker: record it
                log.exception("job %s failed", job_id)
                saved = self._update(
                    job_id,
                    state=JobState.FAILED,
                    finished_at=datetime.now(UTC),
                    error=describe(exc),
                )
            else:
                saved = self._update(
                    job_id,
                    state=JobState.DONE,
                    finished_at=datetime.now(UTC),
                    done=outcome.rows,
                    results=parse_results(outcome.results_json),
                    result_path=outcome.result_path,
                )
            if saved:  # else kept: a restart finds the job's last saved state and acts on it
                self._store.drop_spec(job_id)

    # -- keep_jobs ----------------------------------------------------------------------------

    def _forget_old(self) -> list[str]:
        """Drop the oldest finished jobs beyond `keep_jobs` from memory (lock held); their ids."""
        finished = [j for j, s in self._jobs.items() if s.state.finished]
        forgotten = finished[: max(0, len(self._jobs) - self.keep_jobs)]
        for job_id in forgotten:
            del self._jobs[job_id]
            self._seqs.pop(job_id, None)
        return forgotten

    def _delete(self, job_ids: list[str]) -> None:
        """Delete forgotten jobs' files, after any status write in flight."""
        if not job_ids:
            return
        with self._disk:
            for job_id in job_ids:
                self._store.forget(job_id)
