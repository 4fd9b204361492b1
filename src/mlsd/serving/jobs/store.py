"""The in-process job queue's files: one status file per job, an unfinished job's input beside it.

In `home/jobs/`: `<id>.status.json` (the job's status and its place in the queue),
`<id>.spec.json` (what a queued or running job scores: rows inline, or a Parquet
path) and, once done, `<id>.parquet` (written by `run_job`). Every write goes to a
temporary file in the same folder, is fsynced, then `os.replace`d over the old one
and the folder fsynced (`durable_replace`): a killed process leaves the old version
or the new, never half of one, and a write that returned survives a power cut.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as day_time
from pathlib import Path
from typing import Any

from mlsd.errors import UnavailableError, ValidationError
from mlsd.serving.jobs.base import JobSpec, JobState, JobStatus

log = logging.getLogger(__name__)

STATUS_SUFFIX = ".status.json"
SPEC_SUFFIX = ".spec.json"


@dataclass(frozen=True)
class StoredJob:
    """A job read back from its files; `spec` None when its input file is missing or unreadable."""

    seq: int
    status: JobStatus
    spec: JobSpec | None


def _plain(value: Any) -> Any:
    """JSON for the values transaction rows hold besides JSON's own: datetimes, numpy scalars."""
    if isinstance(value, datetime | date | day_time):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store a {type(value).__name__} in a job file")


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    return datetime.fromisoformat(value)


def _optional(value: Any, kind: type) -> Any:
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"not a {kind.__name__}: {value!r}")
    return value


def durable_replace(tmp: Path, path: Path, *, fsync: bool = True) -> None:
    """Move the written file `tmp` over `path`; with `fsync`, both file and folder reach the disk.

    Once it returns, a reader (or a restarted process) finds the new `path`, whole.
    """
    if fsync:
        with open(tmp, "r+b") as written:  # writable: Windows refuses to sync a read-only fd
            os.fsync(written.fileno())
    os.replace(tmp, path)
    if fsync and os.name == "posix":  # the rename itself is durable once its folder is synced
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def status_to_json(status: JobStatus, seq: int) -> dict[str, Any]:
    """The status file's object: the status as a client sees it, less progress, plus `seq`."""
    out = status.to_dict()
    del out["progress"]
    out["seq"] = seq
    return out


def status_from_json(raw: Any, job_id: str) -> tuple[int, JobStatus]:
    """`(seq, status)` back from a status file's object; ValueError when it is not one."""
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    if raw.get("job_id") != job_id:
        raise ValueError(f"it names job {raw.get('job_id')!r}")
    seq = raw["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ValueError(f"seq is not an integer: {seq!r}")
    submitted = _time(raw["submitted_at"])
    if submitted is None:
        raise ValueError("no submitted_at")
    done = raw.get("done", 0)
    if not isinstance(done, int):
        raise ValueError(f"done is not an integer: {done!r}")
    status = JobStatus(
        job_id=job_id,
        state=JobState(raw["state"]),
        submitted_at=submitted,
        started_at=_time(raw.get("started_at")),
        finished_at=_time(raw.get("finished_at")),
        total=_optional(raw.get("total"), int),
        done=done,
        model=_optional(raw.get("model"), str),
        results=_optional(raw.get("results"), list),
        result_path=_optional(raw.get("result_path"), str),
        error=_optional(raw.get("error"), str),
        attempts=_optional(raw.get("attempts"), int),
    )
    return seq, status


class JobStore:
    """Reads and writes one folder of job files; one server process per folder."""

    def __init__(self, folder: Path, *, fsync: bool = True) -> None:
        self.folder = Path(folder)
        self.fsync = fsync

    def status_path(self, job_id: str) -> Path:
        """Where the job's status lives."""
        return self.folder / f"{job_id}{STATUS_SUFFIX}"

    def spec_path(self, job_id: str) -> Path:
        """Where an unfinished job's input lives."""
        return self.folder / f"{job_id}{SPEC_SUFFIX}"

    def result_path(self, job_id: str) -> Path:
        """Where `run_job` writes the job's results."""
        return self.folder / f"{job_id}.parquet"

    def _write(self, path: Path, text: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        durable_replace(tmp, path, fsync=self.fsync)

    def save_status(self, status: JobStatus, seq: int) -> None:
        """Replace the job's status file (atomically, durably once it returns); OSError if not."""
        text = json.dumps(status_to_json(status, seq), default=_plain)
        self._write(self.status_path(status.job_id), text)

    def save_spec(self, job_id: str, spec: JobSpec) -> None:
        """Write the job's input; ValidationError(field='rows') for values JSON cannot hold."""
        payload = {
            "rows": None if spec.rows is None else [dict(r) for r in spec.rows],
            "path": spec.path,
            "model": spec.model,
        }
        try:
            text = json.dumps(payload, default=_plain)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"rows must hold JSON values: {exc}", field="rows") from exc
        try:
            self._write(self.spec_path(job_id), text)
        except OSError as exc:
            raise UnavailableError(f"cannot save the job in {self.folder}: {exc}") from exc

    def load_spec(self, job_id: str) -> JobSpec | None:
        """The job's input back; None (with a warning) when missing or unreadable."""
        path = self.spec_path(job_id)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            rows, spec_path, model = raw["rows"], raw["path"], raw["model"]
            if (rows is None) == (spec_path is None):
                raise ValueError("it gives neither or both of rows and path")
            if rows is not None and not (
                isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
            ):
                raise ValueError("rows is not a list of objects")
            return JobSpec(rows=rows, path=_optional(spec_path, str), model=_optional(model, str))
        except FileNotFoundError:
            log.warning("job %s: its input file %s is missing", job_id, path)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            log.warning("job %s: its input file %s is unreadable, skipped: %s", job_id, path, exc)
        return None

    def drop_spec(self, job_id: str) -> None:
        """Delete a finished job's input file."""
        self._unlink(self.spec_path(job_id))

    def forget(self, job_id: str) -> None:
        """Delete everything the job left: status, input, results and temporary files."""
        for path in (self.status_path(job_id), self.spec_path(job_id), self.result_path(job_id)):
            self._unlink(path)
            self._unlink(path.with_name(f".{path.name}.tmp"))

    def _unlink(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot delete %s: %s", path, exc)

    def load(self) -> list[StoredJob]:
        """Every readable job in queue order; unreadable status files skipped with a warning."""
        if not self.folder.is_dir():
            return []
        found: list[StoredJob] = []
        for path in self.folder.glob(f"*{STATUS_SUFFIX}"):
            job_id = path.name.removesuffix(STATUS_SUFFIX)
            if not job_id or job_id.startswith("."):
                continue
            try:
                seq, status = status_from_json(json.loads(path.read_text("utf-8")), job_id)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("job status file %s is unreadable, skipped: %s", path, exc)
                continue
            spec = None if status.state.finished else self.load_spec(job_id)
            found.append(StoredJob(seq, status, spec))
        found.sort(key=lambda job: (job.seq, job.status.job_id))
        return found
