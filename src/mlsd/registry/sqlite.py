"""The embedded metadata store: one SQLite file (WAL), writers serialised by BEGIN IMMEDIATE.

A write transaction takes SQLite's write lock up front, so two processes
registering at once queue (busy timeout) and read the version counter one
after the other: they get distinct versions. A process killed mid-transaction
leaves only uncommitted WAL frames, which SQLite ignores.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlsd.errors import UnavailableError
from mlsd.registry.sql import Row, SqlMetadataStore

BUSY_TIMEOUT_S = 30.0


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()


class SqliteMetadataStore(SqlMetadataStore):
    """Registry metadata in one SQLite file (default: `<home>/registry/registry.db`)."""

    def __init__(self, path: Path | str, cache_size: int = 4096) -> None:
        super().__init__(cache_size)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._tx = _SqliteTx(self._conn)
        with self._write() as tx:
            self._create_tables(tx)

    @contextmanager
    def _write(self) -> Iterator[_SqliteTx]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise UnavailableError(f"registry database {self.path} is busy: {exc}") from exc
            try:
                yield self._tx
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[_SqliteTx]:
        with self._lock:
            yield self._tx

    def close(self) -> None:
        with self._lock:
            self._conn.close()
