"""PostgreSQL metadata store: the same SQL as SQLite, for a registry shared across machines.

URL: `postgresql://user@host:port/db`, optionally `?schema=name` (mlsd's own
parameter: the tables live in that schema, created if missing). Writers lock
the model's row (`SELECT ... FOR UPDATE` / `UPDATE ... RETURNING`), so
concurrent registrations get distinct versions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mlsd.backends import parse_url
from mlsd.errors import ConfigError, UnavailableError
from mlsd.registry.sql import Row, SqlMetadataStore

DDL_LOCK = 0x6D6C7364  # advisory lock id ("mlsd") so concurrent first opens do not race


def split_schema(url: str) -> tuple[str, str | None]:
    """A PostgreSQL URL without mlsd's own query parameters, and its `schema=` (or None)."""
    parsed = parse_url(url, "registry_db")
    return parsed.dsn, parsed.schema


class _PgTx:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = self._conn.execute(sql.replace("?", "%s"), params)
        return list(cursor.fetchall()) if cursor.description else []


class PostgresMetadataStore(SqlMetadataStore):
    """Registry metadata in PostgreSQL (psycopg 3), optionally in its own schema."""

    serial = "BIGSERIAL PRIMARY KEY"
    for_update = " FOR UPDATE"

    def __init__(self, url: str, schema: str | None = None, cache_size: int = 4096) -> None:
        super().__init__(cache_size)
        self._dsn, url_schema = split_schema(url)
        self.schema = schema or url_schema
        if self.schema is not None and not self.schema.replace("_", "").isalnum():
            raise ConfigError(f"invalid PostgreSQL schema name {self.schema!r}", field="schema")
        self._connect(create_schema=True)
        with self._write() as tx:
            tx.run(f"SELECT pg_advisory_xact_lock({DDL_LOCK})")
            self._create_tables(tx)

    def _connect(self, *, create_schema: bool = False) -> None:
        """A fresh connection (at open, and after the server dropped the last one)."""
        import psycopg

        try:
            self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)
            if self.schema is not None:
                if create_schema:
                    self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                self._conn.execute(f'SET search_path TO "{self.schema}"')
        except psycopg.OperationalError as exc:
            raise UnavailableError(f"cannot reach the registry database: {exc}") from exc
        self._tx = _PgTx(self._conn)

    def _live(self) -> _PgTx:
        """The connection, replaced first if the server dropped it (a restart, a failover,
        `pg_terminate_backend`): the alias watcher keeps following after an outage."""
        if self._conn.closed or self._conn.broken:
            self._connect()
        return self._tx

    @contextmanager
    def _write(self) -> Iterator[_PgTx]:
        import psycopg

        with self._lock:
            tx = self._live()
            try:
                with self._conn.transaction():
                    yield tx
            except psycopg.OperationalError as exc:  # the next call reconnects
                raise UnavailableError(f"the registry database failed: {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[_PgTx]:
        import psycopg

        with self._lock:
            tx = self._live()
            try:
                yield tx
            except psycopg.OperationalError as exc:  # the next call reconnects
                raise UnavailableError(f"the registry database failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()
