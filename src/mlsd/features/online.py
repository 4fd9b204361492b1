"""The online store: the latest feature row per (view, version, entity), read in one batch.

`OnlineStore` is the interface; `SqliteOnlineStore` the embedded default;
`mlsd.features.online_redis.RedisOnlineStore` the Redis backend. Every backend obeys one
write rule: a row replaces the stored one only if its (event time, created time) is
strictly later, so late or replayed writes are harmless. TTL is applied on read by the
caller (`status_of`), which knows the request time; a row whose event time is later than
the request ("future") is never served as present.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from mlsd.errors import UnavailableError

Lookup = tuple[str, str, int]  # (view, version, entity key)
PRESENT, MISSING, EXPIRED, FUTURE = "present", "missing", "expired", "future"


@dataclass(frozen=True)
class Record:
    """One stored feature row."""

    event_us: int
    created_us: int
    values: npt.NDArray[np.float64]


@dataclass(frozen=True)
class WriteBatch:
    """Rows of one view version to write: keys, times (µs since epoch) and values (n, f)."""

    view: str
    version: str
    keys: npt.NDArray[np.int64]
    event_us: npt.NDArray[np.int64]
    created_us: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


class OnlineStore(Protocol):
    """Latest feature rows by entity, with a watermark per view version."""

    def write(
        self,
        batches: Sequence[WriteBatch],
        watermarks: dict[str, int] | None = None,
        sources: dict[str, str] | None = None,
    ) -> int:
        """Write rows (newer wins), `view:version` watermarks and their sources, atomically.

        A source names the offline table (dataset) a watermark belongs to
        (`mlsd.features.source`), so materialization can tell a switched dataset.
        """
        ...

    def read(self, lookups: Sequence[Lookup]) -> list[Record | None]:
        """The stored rows for every lookup, in order, in one round trip."""
        ...

    def watermark(self, view: str, version: str) -> int | None:
        """The materialization watermark (µs since epoch) of a view version."""
        ...

    def source(self, view: str, version: str) -> str | None:
        """The source recorded with the watermark of a view version, if any."""
        ...

    def clear(self) -> None:
        """Delete everything this store holds (its own namespace only)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def status_of(record: Record | None, request_us: int, ttl_us: int) -> str:
    """present; missing; expired when the row is older than the TTL (both ends inclusive);
    future when the row's event time is later than the request (a replayed or mistimed
    request would otherwise be served values computed from transactions after it)."""
    if record is None:
        return MISSING
    age = request_us - record.event_us
    if age < 0:
        return FUTURE
    if age > ttl_us:
        return EXPIRED
    return PRESENT


def dedupe_latest(batch: WriteBatch) -> WriteBatch:
    """Keep, per key, the row with the latest (event, created) time; later rows win full ties."""
    order = np.lexsort((batch.created_us, batch.event_us, batch.keys))
    keys = batch.keys[order]
    last = np.r_[keys[1:] != keys[:-1], True] if len(keys) else np.zeros(0, dtype=bool)
    idx = order[last]
    return WriteBatch(
        batch.view,
        batch.version,
        batch.keys[idx],
        batch.event_us[idx],
        batch.created_us[idx],
        batch.values[idx],
    )


def _rows(b: WriteBatch) -> list[tuple[str, str, int, int, int, bytes]]:
    """A batch as `online_features` rows: plain ints, each row's values as its bytes
    (sliced from one `tobytes` of the matrix: the same bytes as each row's own)."""
    values = np.ascontiguousarray(b.values)
    blob = values.tobytes()
    width = values.shape[1] * values.itemsize if values.ndim == 2 else values.itemsize
    return [
        (b.view, b.version, k, e, c, blob[i * width : (i + 1) * width])
        for i, (k, e, c) in enumerate(
            zip(b.keys.tolist(), b.event_us.tolist(), b.created_us.tolist(), strict=True)
        )
    ]


#: Up to this many lookups, `SqliteOnlineStore.read` runs one point query per lookup
#: (well under SQLite's 500 compound SELECTs and 32,766 parameters).
SMALL_READ = 64
_SMALL_SQL: dict[int, str] = {}


class SqliteOnlineStore:
    """The embedded online store: one SQLite file in WAL mode."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS online_features (
                view TEXT NOT NULL, version TEXT NOT NULL, entity INTEGER NOT NULL,
                event_us INTEGER NOT NULL, created_us INTEGER NOT NULL, vals BLOB NOT NULL,
                PRIMARY KEY (view, version, entity)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS online_watermarks (
                view_version TEXT PRIMARY KEY, watermark_us INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS online_sources (
                view_version TEXT PRIMARY KEY, source TEXT NOT NULL);
            """
        )

    def write(
        self,
        batches: Sequence[WriteBatch],
        watermarks: dict[str, int] | None = None,
        sources: dict[str, str] | None = None,
    ) -> int:
        """Write rows (newer wins), watermarks and sources in one transaction."""
        n = 0
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                for raw in batches:
                    b = dedupe_latest(raw)
                    rows = _rows(b)
                    self._conn.executemany(
                        "INSERT INTO online_features VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (view, version, entity) DO UPDATE SET "
                        "event_us = excluded.event_us, created_us = excluded.created_us, "
                        "vals = excluded.vals WHERE excluded.event_us > event_us OR "
                        "(excluded.event_us = event_us AND excluded.created_us > created_us)",
                        rows,
                    )
                    n += len(rows)
                for name, mark in (watermarks or {}).items():
                    self._conn.execute(
                        "INSERT OR REPLACE INTO online_watermarks VALUES (?, ?)", (name, mark)
                    )
                for name, source in (sources or {}).items():
                    self._conn.execute(
                        "INSERT OR REPLACE INTO online_sources VALUES (?, ?)", (name, source)
                    )
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise UnavailableError(f"SQLite online store busy or failing: {exc}") from exc
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        return n

    def read(self, lookups: Sequence[Lookup]) -> list[Record | None]:
        """One SELECT for every lookup (grouped by view version)."""
        if 0 < len(lookups) <= SMALL_READ:
            return self._read_small(lookups)
        groups: dict[tuple[str, str], list[int]] = {}
        for view, version, key in lookups:
            groups.setdefault((view, version), []).append(int(key))
        parts, params = [], []
        for (view, version), keys in groups.items():
            unique = list(dict.fromkeys(keys))
            marks = ",".join("?" * len(unique))
            parts.append(
                "SELECT view, version, entity, event_us, created_us, vals FROM online_features "
                f"WHERE view = ? AND version = ? AND entity IN ({marks})"
            )
            params += [view, version, *unique]
        if not parts:
            return []
        try:
            with self._lock:
                rows = self._conn.execute(" UNION ALL ".join(parts), params).fetchall()
        except sqlite3.OperationalError as exc:
            raise UnavailableError(f"SQLite online store failing: {exc}") from exc
        found = {
            (v, ver, int(k)): Record(int(e), int(c), np.frombuffer(b, dtype=np.float64))
            for v, ver, k, e, c, b in rows
        }
        return [found.get((v, ver, int(k))) for v, ver, k in lookups]

    def _read_small(self, lookups: Sequence[Lookup]) -> list[Record | None]:
        """`read` for a few lookups: one point query per lookup, tagged with its position,
        joined by UNION ALL (the statement is compiled once per count, then cached by sqlite3).

        Primary-key equality instead of `IN (...)` lists: ~9 µs instead of ~22 µs for a
        scoring request's two lookups.
        """
        sql = _SMALL_SQL.get(len(lookups))
        if sql is None:
            sql = _SMALL_SQL[len(lookups)] = " UNION ALL ".join(
                f"SELECT {i}, event_us, created_us, vals FROM online_features "
                "WHERE view = ? AND version = ? AND entity = ?"
                for i in range(len(lookups))
            )
        params: list[object] = []
        for view, version, key in lookups:
            params += (view, version, int(key))
        try:
            with self._lock:
                rows = self._conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise UnavailableError(f"SQLite online store failing: {exc}") from exc
        out: list[Record | None] = [None] * len(lookups)
        for i, e, c, b in rows:
            out[i] = Record(int(e), int(c), np.frombuffer(b, dtype=np.float64))
        return out

    def watermark(self, view: str, version: str) -> int | None:
        """The materialization watermark of a view version, if any."""
        with self._lock:
            row = self._conn.execute(
                "SELECT watermark_us FROM online_watermarks WHERE view_version = ?",
                (f"{view}:{version}",),
            ).fetchone()
        return None if row is None else int(row[0])

    def source(self, view: str, version: str) -> str | None:
        """The source recorded with a view version's watermark, if any."""
        with self._lock:
            row = self._conn.execute(
                "SELECT source FROM online_sources WHERE view_version = ?",
                (f"{view}:{version}",),
            ).fetchone()
        return None if row is None else str(row[0])

    def clear(self) -> None:
        """Delete every row, watermark and source."""
        with self._lock:
            self._conn.execute("DELETE FROM online_features")
            self._conn.execute("DELETE FROM online_watermarks")
            self._conn.execute("DELETE FROM online_sources")

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
