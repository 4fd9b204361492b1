"""The job queue on Redis: a list of ids moved with BLMOVE to a processing list, a hash per job.

Keys: `{prefix}jobs:queue` (waiting ids, pushed left, taken right),
`{prefix}jobs:processing` (ids being run), `{prefix}job:{id}` (the job's fields).
A worker beats a heartbeat into the job hash after every chunk; a job whose
heartbeat is older than `stale_after_s` (its worker died) goes back to the queue.
Jobs survive a server restart; result files go to the data folder.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from mlsd.errors import NotFoundError, UnavailableError
from mlsd.serving.jobs.base import JobSpec, JobState, JobStatus, ScoreFn, describe
from mlsd.serving.jobs.runner import parse_results, run_job

log = logging.getLogger(__name__)

Fields = dict[Any, Any]  # a job hash's fields (redis-py's stubs want invariant key types)


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
        prefix: str = "mlsd:",
        max_rows: int = 100_000,
        chunk_rows: int = 1024,
        inline_rows: int = 1000,
        job_ttl_s: int = 86_400,
        stale_after_s: float = 60.0,
        poll_s: int = 1,
    ) -> None:
        self.home = Path(home)
        self.results_dir = self.home / "jobs"
        self.prefix = prefix
        self.max_rows = max_rows
        self.chunk_rows = chunk_rows
        self.inline_rows = inline_rows
        self.job_ttl_s = job_ttl_s
        self.stale_after_s = stale_after_s
        self.poll_s = poll_s
        self._queue_key = f"{prefix}jobs:queue"
        self._processing_key = f"{prefix}jobs:processing"
        self._client = redis.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=2.0, decode_responses=True
        )
        self._blocking = redis.Redis.from_url(
            url, socket_timeout=poll_s + 5.0, socket_connect_timeout=2.0, decode_responses=True
        )
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    def _job_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def submit(self, spec: JobSpec) -> str:
        """Validate, store the job hash and push its id, in one transaction."""
        checked = spec.checked(self.home, self.max_rows)
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
        if not raw:
            raise NotFoundError(f"no job {job_id!r}", field="job_id")
        h = {_text(k): _text(v) for k, v in raw.items()}
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
        )

    def start(self, score_fn: ScoreFn) -> None:
        """Requeue jobs of dead workers, then start this process's worker (once)."""
        if not callable(score_fn):
            raise TypeError("start() needs a function DataFrame -> DataFrame")
        if self._worker is not None and self._worker.is_alive():
            return
        self._stop.clear()
        self._worker = threading.Thread(
            target=self._work, args=(score_fn,), name="mlsd-jobs-redis", daemon=True
        )
        self._worker.start()

    def stop(self) -> None:
        """Stop the worker after its current job; close connections."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def close(self) -> None:
        """Stop and release the connections."""
        self.stop()
        self._client.close()
        self._blocking.close()

    def requeue_stale(self) -> int:
        """Put back in the queue the running jobs whose heartbeat is older than `stale_after_s`."""
        moved = 0
        now = time.time()
        for raw_id in self._client.lrange(self._processing_key, 0, -1):
            job_id = _text(raw_id)
            beat = self._client.hget(self._job_key(job_id), "heartbeat")
            if beat is not None and now - float(beat) < self.stale_after_s:
                continue
            if self._client.lrem(self._processing_key, 1, job_id):  # only one server wins
                pipe = self._client.pipeline(transaction=True)
                pipe.hset(self._job_key(job_id), mapping={"state": JobState.QUEUED.value})
                pipe.rpush(self._queue_key, job_id)  # the taking end: runs next
                pipe.execute()
                moved += 1
                log.warning("job %s requeued: its worker stopped beating", job_id)
        return moved

    def _work(self, score_fn: ScoreFn) -> None:
        last_sweep = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_sweep > self.stale_after_s / 2:
                    self.requeue_stale()
                    last_sweep = time.monotonic()
                job_id = self._blocking.blmove(
                    self._queue_key, self._processing_key, self.poll_s, "RIGHT", "LEFT"
                )
                if job_id is not None:
                    self._run(_text(job_id), score_fn)
            except redis.RedisError as exc:
                log.warning("job worker cannot reach Redis, retrying: %s", exc)
                self._stop.wait(1.0)

    def _beat(self, job_id: str, **fields: str | int | float) -> None:
        mapping: Fields = dict(fields, heartbeat=time.time())
        self._client.hset(self._job_key(job_id), mapping=mapping)

    def _run(self, job_id: str, score_fn: ScoreFn) -> None:
        key = self._job_key(job_id)
        raw_spec = self._client.hget(key, "spec")
        if raw_spec is None:  # expired or deleted meanwhile
            self._client.lrem(self._processing_key, 1, job_id)
            return
        payload = json.loads(raw_spec)
        spec = JobSpec(rows=payload["rows"], path=payload["path"], model=payload["model"])
        self._beat(job_id, state=JobState.RUNNING.value, started_at=_now())
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
            )
        except redis.RedisError:
            raise  # the job stays in processing and is requeued once its heartbeat is stale
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
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(key, mapping=result)
        pipe.hdel(key, "spec")
        pipe.expire(key, self.job_ttl_s)
        pipe.lrem(self._processing_key, 1, job_id)
        pipe.execute()
