"""Runs one job: read its rows, score them in chunks, write the results as Parquet."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlsd.errors import ValidationError
from mlsd.serving.jobs.base import MAX_FILE_ROWS, JobSpec, ScoreFn, open_in_home
from mlsd.serving.jobs.store import durable_replace


@dataclass(frozen=True)
class JobOutcome:
    """What a finished job leaves: its result file, and the results inline when small."""

    rows: int
    result_path: str
    results_json: str | None


def load_frame(
    spec: JobSpec, home: Path | None = None, max_file_rows: int | None = None
) -> pd.DataFrame:
    """The job's input rows; a file opened without following links (`open_in_home`) and
    capped again (it may have grown since submit): ValidationError naming `path`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if spec.rows is not None:
        return pd.DataFrame.from_records([dict(r) for r in spec.rows])
    path = Path(str(spec.path))
    cap = max_file_rows or MAX_FILE_ROWS
    fd = open_in_home(home if home is not None else path.parent, path)
    with os.fdopen(fd, "rb") as handle:
        try:
            parquet = pq.ParquetFile(handle)
            rows = parquet.metadata.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValidationError(
                f"{path.name} is not a readable Parquet file: {exc}", field="path"
            ) from None
        if rows > cap:
            raise ValidationError(
                f"{rows:,} rows in {path.name}: at most {cap:,} per job", field="path"
            )
        frame: pd.DataFrame = parquet.read().to_pandas()
        return frame


def run_job(
    job_id: str,
    spec: JobSpec,
    score_fn: ScoreFn,
    results_dir: Path,
    *,
    chunk_rows: int = 1024,
    inline_rows: int = 1000,
    on_total: Callable[[int], None] = lambda n: None,
    on_progress: Callable[[int], None] = lambda n: None,
    fsync: bool = True,
    attempt: int = 1,
    since: datetime | None = None,
    home: Path | None = None,
    max_file_rows: int | None = None,
) -> JobOutcome:
    """Score the job chunk by chunk (reporting progress) and write `results_dir/{id}.parquet`.

    The result file is on disk (fsynced, with `fsync`) when this returns, so a queue
    that publishes the job as done afterwards never points a client at a missing file.
    Each chunk carries the job in `attrs`: `job_id`, `model`, `attempt` (2 or more: a run
    again after an interrupted one, whose effects the scorer must not repeat) and `since`
    (when the job was submitted: nothing of it was logged before).
    """
    frame = load_frame(spec, home, max_file_rows)
    on_total(len(frame))
    outputs: list[pd.DataFrame] = []
    done = 0
    for start in range(0, len(frame), chunk_rows):
        chunk = frame.iloc[start : start + chunk_rows].reset_index(drop=True)
        chunk.attrs["model"] = spec.model
        chunk.attrs["job_id"] = job_id
        chunk.attrs["attempt"] = attempt
        chunk.attrs["since"] = since.isoformat() if since is not None else None
        out = score_fn(chunk)
        if not isinstance(out, pd.DataFrame) or len(out) != len(chunk):
            raise ValidationError(
                f"the scorer returned {len(out) if hasattr(out, '__len__') else out!r} rows "
                f"for {len(chunk)}",
                field="rows",
            )
        outputs.append(out.reset_index(drop=True))
        done += len(chunk)
        on_progress(done)
    result = pd.concat(outputs, ignore_index=True) if outputs else pd.DataFrame()
    results_dir.mkdir(parents=True, exist_ok=True)
    final = results_dir / f"{job_id}.parquet"
    tmp = results_dir / f".{job_id}.parquet.tmp"
    result.to_parquet(tmp, index=False)
    durable_replace(tmp, final, fsync=fsync)
    inline = (
        result.to_json(orient="records", date_format="iso") if len(result) <= inline_rows else None
    )
    return JobOutcome(len(result), str(final), inline)


def parse_results(results_json: str | None) -> list[dict[str, Any]] | None:
    """Inline results back from their JSON text."""
    if results_json is None:
        return None
    parsed: list[dict[str, Any]] = json.loads(results_json)
    return parsed
