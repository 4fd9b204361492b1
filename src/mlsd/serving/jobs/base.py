"""The async inference queue interface: submit a batch, poll its status and results."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from mlsd.errors import MlsdError, UnavailableError, ValidationError

#: Scores a chunk of rows; returns one output row per input row. The job's model
#: name, when the submitter named one, is in `frame.attrs["model"]`.
ScoreFn = Callable[[pd.DataFrame], pd.DataFrame]


class JobState(StrEnum):
    """Where a job stands."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Done or failed."""
        return self in (JobState.DONE, JobState.FAILED)


#: Rows a Parquet job file may hold.
MAX_FILE_ROWS = 1_000_000


@dataclass(frozen=True)
class JobSpec:
    """A batch to score: `rows` (a list of objects) or `path` (a Parquet file in home)."""

    rows: Sequence[Mapping[str, Any]] | None = None
    path: str | None = None
    model: str | None = None

    def checked(self, home: Path, max_rows: int, max_file_rows: int | None = None) -> JobSpec:
        """This spec validated, its path made absolute; ValidationError naming the bad field.

        Both kinds are capped: at most `max_rows` inline rows, at most `max_file_rows`
        (`MAX_FILE_ROWS` unless given) in a Parquet file, read from its footer, so a 2 M-row
        file is refused at submit instead of scoring for minutes in the serving process.
        """
        if (self.rows is None) == (self.path is None):
            raise ValidationError("give exactly one of rows or path", field="rows")
        if self.model is not None and not self.model.strip():
            raise ValidationError("model must not be empty", field="model")
        if self.rows is not None:
            if not isinstance(self.rows, Sequence) or isinstance(self.rows, str | bytes):
                raise ValidationError("rows must be a list of objects", field="rows")
            if not self.rows:
                raise ValidationError("rows must not be empty", field="rows")
            if len(self.rows) > max_rows:
                raise ValidationError(f"at most {max_rows} rows per job", field="rows")
            for i, row in enumerate(self.rows):
                if not isinstance(row, Mapping):
                    raise ValidationError(f"row {i} is not an object", field=f"rows[{i}]")
            return self
        resolved = resolve_in_home(home, str(self.path))
        rows, cap = parquet_rows(resolved), max_file_rows or MAX_FILE_ROWS
        if rows > cap:
            raise ValidationError(
                f"{rows:,} rows in {self.path!r}: at most {cap:,} per job", field="path"
            )
        return JobSpec(path=str(resolved), model=self.model)


def parquet_rows(path: Path) -> int:
    """The row count in a Parquet file's footer; ValidationError if it is not Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(
            f"{path.name} is not a readable Parquet file: {exc}", field="path"
        ) from None


def resolve_in_home(home: Path, path: str) -> Path:
    """`path` (relative to `home`, or absolute) resolved, refused unless a Parquet file in home."""
    if not path or "\x00" in path:
        raise ValidationError("path must be a non-empty file path", field="path")
    root = Path(home).resolve()
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise ValidationError(f"path {path!r} is outside the data folder", field="path")
    if resolved.suffix != ".parquet":
        raise ValidationError(f"path {path!r} is not a .parquet file", field="path")
    if not resolved.is_file():
        raise ValidationError(f"no file at {path!r} in the data folder", field="path")
    return resolved


def open_in_home(home: Path, path: str | Path) -> int:
    """A read-only descriptor on the job file `path` (checked at submit), opened without
    following any link: one component at a time from `home`, each with `O_NOFOLLOW`.

    Between the check at submit and the run a file (or a folder on its way) may have been
    swapped for a symlink to anything the server can read; opened this way the swap is an
    error (ValidationError naming `path`), never a read of the link's target.
    """
    root = Path(home).resolve()
    target = Path(path)
    try:
        parts = (target if target.is_absolute() else root / target).relative_to(root).parts
    except ValueError:
        raise ValidationError(
            f"path {str(path)!r} is outside the data folder", field="path"
        ) from None
    if not parts or ".." in parts:
        raise ValidationError(f"path {str(path)!r} is not a file in the data folder", field="path")
    nofollow = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | nofollow)
    except OSError as exc:
        raise ValidationError(f"cannot open the data folder: {exc}", field="path") from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=fd)
            os.close(fd)
            fd = inner
        file_fd = os.open(parts[-1], os.O_RDONLY | nofollow | os.O_NONBLOCK, dir_fd=fd)
    except OSError as exc:
        raise ValidationError(
            f"cannot open {str(path)!r} without following links "
            f"(was it replaced by a symbolic link?): {exc.strerror}",
            field="path",
        ) from None
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise ValidationError(f"{str(path)!r} is not a regular file", field="path")
    os.set_blocking(file_fd, True)
    return file_fd


@dataclass(frozen=True)
class JobStatus:
    """A job as a client sees it: `results` inline when small, `result_path` once done.

    `attempts` counts the runs started (2 or more: a restart, or a dead worker on the
    Redis queue, made the job run again from the start); None where a queue does not count.
    """

    job_id: str
    state: JobState
    submitted_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    total: int | None = None
    done: int = 0
    model: str | None = None
    results: list[dict[str, Any]] | None = None
    result_path: str | None = None
    error: str | None = None
    attempts: int | None = None

    @property
    def progress(self) -> float:
        """Fraction of rows scored, 0 to 1 (1 once done)."""
        if self.state is JobState.DONE:
            return 1.0
        return self.done / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ISO timestamps, the state as text, progress included."""
        out = asdict(self)
        out["state"] = self.state.value
        for key in ("submitted_at", "started_at", "finished_at"):
            value = out[key]
            out[key] = value.isoformat() if value is not None else None
        out["progress"] = self.progress
        return out


@runtime_checkable
class JobQueue(Protocol):
    """A queue of scoring jobs with a worker in the server process."""

    def submit(self, spec: JobSpec) -> str:
        """Validate and enqueue a job; returns its id."""
        ...

    def get(self, job_id: str) -> JobStatus:
        """A job's status; NotFoundError(field='job_id') for an unknown id."""
        ...

    def start(self, score_fn: ScoreFn) -> None:
        """Start the worker thread, scoring with `score_fn`."""
        ...

    def stop(self) -> None:
        """Stop the worker after its current chunk."""
        ...


def wait_for(queue: JobQueue, job_id: str, timeout_s: float = 30.0) -> JobStatus:
    """Poll until the job is done or failed; UnavailableError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = queue.get(job_id)
        if status.state.finished:
            return status
        if time.monotonic() > deadline:
            raise UnavailableError(f"job {job_id} not finished after {timeout_s:.0f} s")
        time.sleep(0.01)


def describe(exc: BaseException) -> str:
    """A job failure as one line for its status."""
    if isinstance(exc, MlsdError):
        field = f" (field {exc.field})" if exc.field else ""
        return f"{type(exc).__name__}: {exc.message}{field}"
    return f"{type(exc).__name__}: {exc}"
