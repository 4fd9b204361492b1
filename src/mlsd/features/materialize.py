"""Materialization: offline tables -> online store, incremental, chunked and resumable.

Each view version has a watermark (µs) stored in the online store itself. A run walks
time chunks (watermark, watermark + chunk] up to `end`; per chunk it writes the latest
row of every entity seen in the chunk, and the new watermark, in one atomic write. A
killed run resumes from the last committed chunk; replaying a chunk is harmless because
the online write rule keeps the newer row. Every table is checked before the first write,
so a run that fails validation leaves the online store as it was.

A watermark belongs to one offline table: every chunk also records the table's source
(the dataset it was built from, `mlsd.features.source`). When the online store holds a
watermark of another source (a switched dataset, or one overwritten in place), resuming
from it would skip the new rows and keep the old ones, so the run either clears the
online store and rematerializes from the start (`on_switch="rebuild"`, the reason is in
the report) or refuses (`"refuse"`, a ConflictError naming both sources).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

from mlsd.errors import ConflictError, IntegrityError, ValidationError
from mlsd.features.offline import OfflineStore, ViewRequest
from mlsd.features.online import OnlineStore, WriteBatch
from mlsd.features.pipeline import CREATED_TS, EVENT_TS, connect
from mlsd.features.source import read_source, short

DAY_US = 86_400_000_000
#: Called after each chunk (and its watermark) is committed: (view, chunks done, chunks total).
Progress = Callable[[str, int, int], None]
OnSwitch = Literal["rebuild", "refuse"]


@dataclass
class MaterializeReport:
    """What one materialization run did, per view."""

    end: datetime
    rows_written: dict[str, int] = field(default_factory=dict)
    chunks: dict[str, int] = field(default_factory=dict)
    watermarks: dict[str, datetime] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    rebuilt: str | None = None
    """Why the online store was cleared and rematerialized from the start (None: it was not)."""
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
    on_switch: OnSwitch = "rebuild",
) -> MaterializeReport:
    """Bring the online store up to `end` (default: the newest offline row) for every view.

    `progress` runs after each chunk's atomic write: a run stopped there resumes after it.
    `on_switch` says what to do when the online store holds another dataset's rows.
    """
    started = time.perf_counter()
    end_us = None if end is None else to_us(end)
    if chunk <= 0:
        raise ValidationError("chunk size must be positive", field="chunk")
    if on_switch not in ("rebuild", "refuse"):
        raise ValidationError("on_switch must be 'rebuild' or 'refuse'", field="on_switch")
    con = connect()
    try:
        return _run(con, offline, online, requests, end_us, chunk, progress, started, on_switch)
    finally:
        con.close()


def switched(online: OnlineStore, req: ViewRequest, source: str, mark: int | None) -> str | None:
    """Why the online rows of `req` are not those of `source` (None when they are)."""
    if mark is None:
        return None
    held = online.source(req.view.name, req.version)
    return None if held == source else _why([f"{req.view.name}:{req.version}"], held, source)


def _why(names: Sequence[str], held: str | None, source: str) -> str:
    tables = "table is" if len(names) == 1 else "tables are"
    return (
        f"the online store holds {', '.join(names)} materialized from {short(held)}, "
        f"but the offline {tables} built from {short(source)}"
    )


def _explain(switches: Sequence[tuple[str, str | None, str]]) -> str:
    """One sentence per (held, source) pair: views of one dataset are named together."""
    groups: dict[tuple[str | None, str], list[str]] = {}
    for name, held, source in switches:
        groups.setdefault((held, source), []).append(name)
    return "; ".join(_why(names, held, source) for (held, source), names in groups.items())


def _run(
    con: duckdb.DuckDBPyConnection,
    offline: OfflineStore,
    online: OnlineStore,
    requests: Sequence[ViewRequest],
    end_us: int | None,
    chunk: int,
    progress: Progress | None,
    started: float,
    on_switch: OnSwitch,
) -> MaterializeReport:
    found: list[tuple[ViewRequest, tuple[int, int], str, int | None]] = []
    switches: list[tuple[str, str | None, str]] = []
    for req in requests:  # validate every table before the first write
        bounds = _bounds(con, offline, req)
        if bounds is None:
            continue
        source = read_source(offline.folder(req.view.name, req.version))
        mark = online.watermark(req.view.name, req.version)
        held = None if mark is None else online.source(req.view.name, req.version)
        if mark is not None and held != source:
            switches.append((f"{req.view.name}:{req.version}", held, source))
        found.append((req, bounds, source, mark))
    reason = _explain(switches)
    if switches and on_switch == "refuse":
        raise ConflictError(
            f"{reason}: rematerialize from the start to serve the new dataset "
            "(this clears the online store)",
            field="online_store",
        )
    if switches:  # another dataset's rows: newer-wins would keep them, so start afresh
        online.clear()
    plans = [
        (req, bounds[0] - 1 if mark is None or switches else mark, _stop(bounds, end_us), source)
        for req, bounds, source, mark in found
    ]
    final_end = end_us if end_us is not None else max((p[2] for p in plans), default=0)
    report = MaterializeReport(end=from_us(final_end))
    if switches:
        report.rebuilt = f"{reason}: cleared the online store and rematerialized"
    for req, start, stop, source in plans:
        name = f"{req.view.name}:{req.version}"
        report.sources[req.view.name] = source
        edges = [*list(range(start, stop, chunk))[1:], stop] if stop > start else []
        written, lo = 0, start
        for i, hi in enumerate(edges):
            batch = _chunk(con, offline, req, lo, hi)
            written += online.write([batch], watermarks={name: hi}, sources={name: source})
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


def _stop(bounds: tuple[int, int], end_us: int | None) -> int:
    return bounds[1] if end_us is None else end_us


def utc_now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)
