"""The job queue on Redis: lists of ids, a hash per job, claims and requeues as Lua scripts.

Keys, all under the queue's prefix (`{MLSD_REDIS_PREFIX}jobs:` when opened from
settings): `{prefix}queue` (waiting ids, pushed left, taken right),
`{prefix}processing` (ids being run), `{prefix}job:{id}` (the job's fields),
`{prefix}finished` (finished ids by finish time), `{prefix}forgotten`
(ids forgotten lately, by when), `{prefix}worker:{id}` (a worker's lease). A worker
takes a job, counts the run (`attempts`) and names itself its `owner` in one script;
while it lives it renews its lease (TTL `lease_s`) every third of it, and it beats a
heartbeat into the hash after every chunk. A running job is taken back when its worker
is dead: its owner's lease expired (a server killed, or cut off from Redis, for
`lease_s`), or its heartbeat is older than `stale_after_s`; it is queued again, or failed
once it was interrupted `max_attempts` times: a job that kills its worker must not do so
forever. Jobs survive a server restart.

Taken back at once at a restart: a server keeps its worker id in `home/.jobs-worker-id`
while it holds an exclusive lock on `home/.jobs-worker.lock`. The kernel drops that lock
when the process dies (even by `kill -9`), so a server that takes it knows the previous
holder is gone and requeues the jobs that holder owned at start, without waiting for its
lease to lapse. A second process on the same folder finds the lock taken and runs under a
fresh id. A worker whose job was taken back meanwhile (its lease lapsed while it was cut
off) finds out at its next beat, which only the owner may write, and drops the run.

Bounds: the newest `keep_jobs` finished jobs are kept, none longer than `job_ttl_s`
(their keys' TTL). A TTL alone would bound neither the count (a burst of jobs all
stays for a day) nor the files (Redis expires keys silently, so no one would
delete the result file): finished ids are listed, and forgetting one deletes its
keys. Each server writes result files to its own `home/jobs/`, so a forgotten id
is listed under `{prefix}forgotten` for `7 * job_ttl_s` and every server's sweep
deletes `<id>.parquet` (and its temporary file) from its own folder, and nothing
else: ids are random, so a file named after a forgotten id is that job's.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from mlsd.errors import NotFoundError, UnavailableError
from mlsd.serving.jobs import redis_scripts as scripts
from mlsd.serving.jobs.base import MAX_FILE_ROWS, JobSpec, JobState, JobStatus, ScoreFn, describe
from mlsd.serving.jobs.runner import parse_results, run_job

log = logging.getLogger(__name__)

Fields = dict[Any, Any]  # a job hash's fields (redis-py's stubs want invariant key types)

#: Forgotten ids kept at most (~100 bytes each), however many jobs a day brings.
FORGOTTEN_CAP = 100_000
#: Ids a script forgets, or a sweep looks up, per call (keeps each script short).
BATCH = 1000
_RESULT_FILE = re.compile(r"\.?([0-9a-f]{32})\.parquet(?:\.tmp)?")


class JobLostError(Exception):
    """The job being run is no longer this worker's (taken back, or its key vanished)."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a job")


class RedisJobQueue:
    """Jobs shared through Redis; each server process runs one worker thread."""

    def __init__(
        self,
        url: str,
        home: Path,
        *,
        prefix: str = "mlsd:jobs:",
        max_rows: int = 100_000,
        max_file_rows: int = MAX_FILE_ROWS,
        chunk_rows: int = 1024,
        inline_rows: int = 1000,
        job_ttl_s: int = 86_400,
        stale_after_s: float = 60.0,
        poll_s: int = 1,
        max_attempts: int = 3,
        keep_jobs: int = 1000,
        socket_timeout_s: float = 2.0,
        lease_s: float = 5.0,
    ) -> None:
        self.home = Path(home)
        self.results_dir = self.home / "jobs"
        self.prefix = prefix
        self.max_rows = max_rows
        self.max_file_rows = max_file_rows
        self.chunk_rows = chunk_rows
        self.inline_rows = inline_rows
        self.job_ttl_s = job_ttl_s
        self.stale_after_s = stale_after_s
        self.poll_s = poll_s
        self.max_attempts = max_attempts
        self.keep_jobs = keep_jobs
        self.lease_s = lease_s
        #: This worker's id (its jobs' `owner`): the folder's id once `start` holds its lock.
        self.worker_id = uuid.uuid4().hex
        self._reclaim = ""  # a dead predecessor's id, whose jobs the next sweep requeues
        self._lock_fd: int | None = None
        self._queue_key = f"{prefix}queue"
        self._processing_key = f"{prefix}processing"
        self._finished_key = f"{prefix}finished"
        self._forgotten_key = f"{prefix}forgotten"
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            decode_responses=True,
        )
        self._blocking = redis.Redis.from_url(
            url,
            socket_timeout=poll_s + 5.0,
            socket_connect_timeout=socket_timeout_s,
            decode_responses=True,
        )
        self._claim_script = self._client.register_script(scripts.CLAIM)
        self._requeue_script = self._client.register_script(scripts.REQUEUE)
        self._forget_script = self._client.register_script(scripts.FORGET)
        self._beat_script = self._client.register_script(scripts.BEAT)
        self._finish_script = self._client.register_script(scripts.FINISH)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._leaser: threading.Thread | None = None

    def _lease_key(self, worker_id: str) -> str:
        return f"{self.prefix}worker:{worker_id}"

    def _job_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def submit(self, spec: JobSpec) -> str:
        """Validate, store the job hash and push its id, in one transaction."""
        checked = spec.checked(self.home, self.max_rows, self.max_file_rows)
        job_id = uuid.uuid4().hex
        payload = {
            "rows": [dict(r) for r in checked.rows] if checked.rows is not None else None,
            "path": checked.path,
            "model": checked.model,
        }
        fields: Fields = {
            "state": JobState.QUEUED.value,
            "spec": json.dumps(payload, default=_json_default),
            "submitted_at": _now(),
            "model": checked.model or "",
            "done": 0,
            "attempts": 0,
        }
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(self._job_key(job_id), mapping=fields)
            pipe.expire(self._job_key(job_id), self.job_ttl_s * 7)
            pipe.lpush(self._queue_key, job_id)
            pipe.execute()
        except redis.RedisError as exc:
            raise UnavailableError(f"job queue unavailable: {exc}") from exc
        return job_id

    def get(self, job_id: str) -> JobStatus:
        """The job's status from its hash."""
        try:
            raw = self._client.hgetall(self._job_key(job_id))
        except redis.RedisError as exc:
            raise UnavailableError(f"job queue unavailable: {exc}") from exc
        h = {_text(k): _text(v) for k, v in raw.items()}
        if "state" not in h or "submitted_at" not in h:  # none, or a remnant of a vanished key
            raise NotFoundError(f"no job {job_id!r} (expired or deleted)", field="job_id")
        return JobStatus(
            job_id=job_id,
            state=JobState(h["state"]),
            submitted_at=datetime.fromisoformat(h["submitted_at"]),
            started_at=_time(h.get("started_at")),
            finished_at=_time(h.get("finished_at")),
            total=int(h["total"]) if "total" in h else None,
            done=int(h.get("done", 0)),
            model=h.get("model") or None,
            results=parse_results(h.get("results")),
            result_path=h.get("result_path"),
            error=h.get("error"),
            attempts=int(h.get("attempts", 0)),
        )

    def start(self, score_fn: ScoreFn) -> None:
        """Take the folder's worker id, requeue jobs of dead workers (a killed predecessor's
        at once), then start this process's worker and its lease (once)."""
        if not callable(score_fn):
            raise TypeError("start() needs a function DataFrame -> DataFrame")
        if self._worker is not None and self._worker.is_alive():
            return
        self._stop.clear()
        self._take_identity()
        try:
            self._renew_lease()
            self.requeue_stale()
        except redis.RedisError as exc:  # the worker's first sweep tries again
            log.warning("job queue: cannot requeue interrupted jobs at start yet: %s", exc)
        self._leaser = threading.Thread(target=self._lease, name="mlsd-jobs-lease", daemon=True)
        self._leaser.start()
        self._worker = threading.Thread(
            target=self._work, args=(score_fn,), name="mlsd-jobs-redis", daemon=True
        )
        self._worker.start()

    def stop(self) -> None:
        """Stop the worker after its current job, end its lease, release the folder's id."""
        self._stop.set()
        for thread in (self._worker, self._leaser):
            if thread is not None:
                thread.join()
        if self._worker is not None:
            self._worker = self._leaser = None
            try:
                self._client.delete(self._lease_key(self.worker_id))
            except redis.RedisError as exc:
                log.warning("job queue: cannot end the worker's lease (it expires): %s", exc)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the lock goes with it
            self._lock_fd = None

    # -- identity and lease -------------------------------------------------------------------

    def _take_identity(self) -> None:
        """Hold `home/.jobs-worker.lock`, run under the id in `.jobs-worker-id` (made once).

        The previous holder of the lock is dead (the kernel released it), so the jobs it
        owned are requeued by the next sweep. If another live process holds the lock, this
        one keeps its random id and takes nothing back early.
        """
        if self._lock_fd is not None:
            return
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.home / ".jobs-worker.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("job queue: no worker lock in %s (%s): a fresh worker id", self.home, exc)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            log.info("job queue: another server runs on %s; this worker has a fresh id", self.home)
            return
        self._lock_fd = fd
        id_file = self.home / ".jobs-worker-id"
        try:
            known = id_file.read_text().strip()
        except FileNotFoundError:
            known = ""
        if re.fullmatch(r"[0-9a-f]{32}", known):
            self.worker_id = self._reclaim = known
        else:
            id_file.write_text(self.worker_id)

    def _renew_lease(self) -> None:
        self._client.set(self._lease_key(self.worker_id), "1", px=int(self.lease_s * 1000))

    def _lease(self) -> None:
        """Renew the lease every third of `lease_s` until stopped."""
        while not self._stop.wait(self.lease_s / 3):
            try:
                self._renew_lease()
            except redis.RedisError as exc:
                log.warning("job queue: cannot renew the worker's lease: %s", exc)

    def close(self) -> None:
        """Stop and release the connections."""
        self.stop()
        self._client.close()
        self._blocking.close()

    # -- dead workers -------------------------------------------------------------------------

    def requeue_stale(self) -> int:
        """Take back the running jobs of dead workers: owned by the killed predecessor of
        this server, or by a worker whose lease expired, or beating no more for
        `stale_after_s`.

        Each is queued again (it runs next), or failed once it was interrupted
        `max_attempts` times. Returns how many were taken back, either way.
        """
        taken = 0
        failed = False
        reclaim = self._reclaim
        for raw_id in self._client.lrange(self._processing_key, 0, -1):
            job_id = _text(raw_id)
            keys = [self._processing_key, self._queue_key, self._finished_key]
            outcome = self._requeue_script(
                keys=[*keys, self._job_key(job_id)],
                args=[job_id, time.time(), self.stale_after_s, self.max_attempts, _now(),
                      self.job_ttl_s, reclaim, self._lease_key("")],
            )  # fmt: skip
            if outcome == 1:
                log.warning("job %s requeued: its worker is gone", job_id)
            elif outcome == 2:
                log.error(
                    "job %s failed: interrupted max_attempts=%d times", job_id, self.max_attempts
                )
                failed = True
            taken += outcome != 0
        if reclaim and reclaim == self._reclaim:  # the predecessor's jobs are all back
            self._reclaim = ""
        if failed:
            self.forget_old()
        return taken

    def _claim(self) -> tuple[str, int] | None:
        """Take the oldest waiting job, marked running, its run counted: `(id, attempts)`."""
        claimed = self._claim_script(
            keys=[self._queue_key, self._processing_key, self._lease_key(self.worker_id)],
            args=[self._job_key(""), _now(), time.time(), self.worker_id,
                  int(self.lease_s * 1000)],
        )  # fmt: skip
        if not claimed:
            return None
        return _text(claimed[0]), int(claimed[1])

    # -- forgetting ---------------------------------------------------------------------------

    def forget_old(self) -> list[str]:
        """Forget finished jobs beyond `keep_jobs` or `job_ttl_s` (keys, then this server's files).

        Several servers may call it at once: each id is forgotten by one of them.
        """
        forgotten: list[str] = []
        while True:
            ids = self._forget_script(
                keys=[self._finished_key, self._forgotten_key],
                args=[time.time(), self.keep_jobs, self.job_ttl_s, self._job_key(""),
                      7 * self.job_ttl_s, FORGOTTEN_CAP, BATCH],
            )  # fmt: skip
            batch = [_text(i) for i in ids]
            for job_id in batch:
                self._delete_files(job_id)
            forgotten += batch
            if len(batch) < BATCH:
                return forgotten

    def delete_forgotten_files(self) -> int:
        """Delete the result files in this server's `home/jobs/` of jobs any server forgot."""
        try:
            names = [entry.name for entry in os.scandir(self.results_dir) if entry.is_file()]
        except FileNotFoundError:
            return 0
        except OSError as exc:
            log.warning("cannot list %s: %s", self.results_dir, exc)
            return 0
        ids = sorted({m.group(1) for m in map(_RESULT_FILE.fullmatch, names) if m is not None})
        deleted = 0
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            scores = self._client.zmscore(self._forgotten_key, chunk)
            for job_id, score in zip(chunk, scores, strict=True):
                if score is not None:
                    deleted += self._delete_files(job_id)
        return deleted

    def _delete_files(self, job_id: str) -> int:
        """Delete the job's result file and temporary file from this server's folder."""
        deleted = 0
        for name in (f"{job_id}.parquet", f".{job_id}.parquet.tmp"):
            path = self.results_dir / name
            try:
                path.unlink()
                deleted += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot delete %s: %s", path, exc)
        return deleted

    def sweep(self) -> None:
        """The worker's periodic chores: dead workers' jobs, old jobs, forgotten files."""
        self.requeue_stale()
        self.forget_old()
        self.delete_forgotten_files()

    # -- worker -------------------------------------------------------------------------------

    def _work(self, score_fn: ScoreFn) -> None:
        last_sweep = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_sweep > min(self.stale_after_s / 2, self.lease_s):
                    self.sweep()
                    last_sweep = time.monotonic()
                claimed = self._claim()
                if claimed is None:
                    # wait for a job without taking it (a no-op rotation): the claim script
                    # takes it, so the take and the count are one step
                    self._blocking.blmove(
                        self._queue_key, self._queue_key, self.poll_s, "RIGHT", "RIGHT"
                    )
                    continue
                self._run(*claimed, score_fn)
            except redis.RedisError as exc:
                log.warning("job worker cannot reach Redis, retrying: %s", exc)
                self._stop.wait(1.0)

    def _beat(self, job_id: str, **fields: str | int | float) -> None:
        """Progress and heartbeat; JobLostError when the job is no longer this worker's."""
        flat: list[str | int | float] = ["heartbeat", time.time()]
        for name, value in fields.items():
            flat += [name, value]
        if not self._beat_script(keys=[self._job_key(job_id)], args=[self.worker_id, *flat]):
            raise JobLostError(job_id)

    def _run(self, job_id: str, attempt: int, score_fn: ScoreFn) -> None:
        key = self._job_key(job_id)
        raw_spec, submitted = self._client.hmget(key, ["spec", "submitted_at"])
        if raw_spec is None:  # expired or deleted meanwhile
            self._client.lrem(self._processing_key, 1, job_id)
            return
        payload = json.loads(raw_spec)
        spec = JobSpec(rows=payload["rows"], path=payload["path"], model=payload["model"])
        result: Fields
        try:
            outcome = run_job(
                job_id,
                spec,
                score_fn,
                self.results_dir,
                chunk_rows=self.chunk_rows,
                inline_rows=self.inline_rows,
                on_total=lambda n: self._beat(job_id, total=n),
                on_progress=lambda n: self._beat(job_id, done=n),
                attempt=attempt,
                home=self.home,
                max_file_rows=self.max_file_rows,
                since=_time(_text(submitted)) if submitted else None,
            )
        except redis.RedisError:
            raise  # the job stays in processing and is requeued once its lease is gone
        except JobLostError:
            log.warning("job %s was taken back from this worker (or deleted): run dropped", job_id)
            return
        except Exception as exc:  # a job failure must not kill the worker: record it
            log.exception("job %s failed", job_id)
            result = {"state": JobState.FAILED.value, "error": describe(exc)}
        else:
            result = {
                "state": JobState.DONE.value,
                "done": outcome.rows,
                "result_path": outcome.result_path,
            }
            if outcome.results_json is not None:
                result["results"] = outcome.results_json
        result["finished_at"] = _now()
        flat: list[Any] = [item for pair in result.items() for item in pair]
        published = self._finish_script(
            keys=[key, self._processing_key, self._finished_key],
            args=[self.worker_id, job_id, time.time(), self.job_ttl_s, *flat],
        )
        if not published:
            log.warning("job %s was taken back from this worker (or deleted): run dropped", job_id)
        self.forget_old()
