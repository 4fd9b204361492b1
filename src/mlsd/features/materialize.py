"""Materialization: offline tables -> online store, incremental, chunked and resumable.

Each view version has a watermark (µs) stored in the online store itself. A run walks
time chunks (watermark, watermark + chunk] up to `end`; per chunk it writes the latest
row of every entity seen in the chunk, and the new watermark, in one atomic write. A
killed run resumes from the last committed chunk; replaying a chunk is harmless because
the online write rule keeps the newer row. Every table is checked before the first write,
so a run that fails validation leaves the online store as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import numpy as np
import pandas as pd

from mlsd.errors import IntegrityError, ValidationError
from mlsd.features.offline import OfflineStore, ViewRequest
from mlsd.features.online import OnlineStore, WriteBatch
from mlsd.features.pipeline import CREATED_TS, EVENT_TS, connect

DAY_US = 86_400_000_000
#: Called after each chunk (and its watermark) is committed: (view, chunks done, chunks total).
Progress = Callable[[str, int, int], None]


@dataclass
class MaterializeReport:
    """What one materialization run did, per view."""

    end: datetime
    rows_written: dict[str, int] = field(default_factory=dict)
    chunks: dict[str, int] = field(default_factory=dict)
    watermarks: dict[str, datetime] = field(default_factory=dict)
    seconds: float = 0.0


def to_us(when: datetime, name: str = "end") -> int:
    """A tz-aware datetime as µs since the epoch; naive ones are refused."""
    if when.tzinfo is None:
        raise ValidationError(f"{name} must be timezone-aware (UTC), got {when}", field=name)
    return int(pd.Timestamp(when).tz_convert("UTC").value // 1000)


def from_us(us: int) -> datetime:
    """µs since the epoch as a UTC datetime."""
    return pd.Timestamp(us * 1000, tz="UTC").to_pydatetime()


def _bounds(
    con: duckdb.DuckDBPyConnection, offline: OfflineStore, req: ViewRequest
) -> tuple[int, int] | None:
    try:
        row = con.execute(
            f"SELECT min(epoch_us({EVENT_TS})), max(epoch_us({EVENT_TS})) "
            f"FROM ({offline.table_sql(req.view, req.version)})"
        ).fetchone()
    except duckdb.Error as exc:
        raise IntegrityError(
            f"offline table of view {req.view.name!r} is unreadable: {exc}", field="view"
        ) from exc
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


def _chunk(
    con: duckdb.DuckDBPyConnection, offline: OfflineStore, req: ViewRequest, lo: int, hi: int
) -> WriteBatch:
    """The latest row of each entity with event time in (lo, hi]."""
    key = req.view.entity.join_key if req.view.entity else ""
    cols = ", ".join(f'"{f}"' for f in req.view.features)
    frame = con.execute(
        f"SELECT {key}, epoch_us({EVENT_TS}) AS e, epoch_us({CREATED_TS}) AS c, {cols} "
        f"FROM ({offline.table_sql(req.view, req.version)}) "
        # a bare column comparison, so Parquet row groups outside the chunk are skipped
        f"WHERE {EVENT_TS} > make_timestamptz({lo}) AND {EVENT_TS} <= make_timestamptz({hi}) "
        f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY e DESC, c DESC) = 1"
    ).df()
    return WriteBatch(
        req.view.name,
        req.version,
        frame[key].to_numpy(dtype=np.int64),
        frame["e"].to_numpy(dtype=np.int64),
        frame["c"].to_numpy(dtype=np.int64),
        np.ascontiguousarray(frame[list(req.view.features)].to_numpy(dtype=np.float64)),
    )


def materialize(
    offline: OfflineStore,
    online: OnlineStore,
    requests: Sequence[ViewRequest],
    end: datetime | None = None,
    chunk: int = 7 * DAY_US,
    progress: Progress | None = None,
) -> MaterializeReport:
    """Bring the online store up to `end` (default: the newest offline row) for every view.

    `progress` runs after each chunk's atomic write: a run stopped there resumes after it.
    """
    started = time.perf_counter()
    end_us = None if end is None else to_us(end)
    if chunk <= 0:
        raise ValidationError("chunk size must be positive", field="chunk")
    con = connect()
    try:
        return _run(con, offline, online, requests, end_us, chunk, progress, started)
    finally:
        con.close()


def _run(
    con: duckdb.DuckDBPyConnection,
    offline: OfflineStore,
    online: OnlineStore,
    requests: Sequence[ViewRequest],
    end_us: int | None,
    chunk: int,
    progress: Progress | None,
    started: float,
) -> MaterializeReport:
    plans: list[tuple[ViewRequest, int, int]] = []
    for req in requests:  # validate every table before the first write
        bounds = _bounds(con, offline, req)
        if bounds is None:
            continue
        stop = bounds[1] if end_us is None else end_us
        mark = online.watermark(req.view.name, req.version)
        start = bounds[0] - 1 if mark is None else mark
        plans.append((req, start, stop))
    final_end = end_us if end_us is not None else max((p[2] for p in plans), default=0)
    report = MaterializeReport(end=from_us(final_end))
    for req, start, stop in plans:
        name = f"{req.view.name}:{req.version}"
        edges = [*list(range(start, stop, chunk))[1:], stop] if stop > start else []
        written, lo = 0, start
        for i, hi in enumerate(edges):
            batch = _chunk(con, offline, req, lo, hi)
            written += online.write([batch], watermarks={name: hi})
            lo = hi
            if progress:
                progress(req.view.name, i + 1, len(edges))
        report.rows_written[req.view.name] = written
        report.chunks[req.view.name] = len(edges)
        mark = online.watermark(req.view.name, req.version)
        if mark is not None:
            report.watermarks[req.view.name] = from_us(mark)
    report.seconds = time.perf_counter() - started
    return report


def utc_now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)
