"""The prediction log in PostgreSQL: one table, written with COPY."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from mlsd.errors import UnavailableError
from mlsd.predlog.base import BufferedLog
from mlsd.predlog.record import (
    COLUMNS,
    SCHEMA,
    PredictionRecord,
    Row,
    finish_frame,
    to_rows,
)

_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    request_id TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    features JSONB NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    decision TEXT NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    degraded BOOLEAN NOT NULL,
    endpoint TEXT NOT NULL,
    variant TEXT NOT NULL,
    transaction_id BIGINT,
    customer_id BIGINT,
    terminal_id BIGINT,
    tx_time TIMESTAMPTZ
)
"""
_DDL_LOCK = 0x6D6C706C  # advisory lock id ("mlpl")


class PostgresPredictionLog(BufferedLog[list[Row]]):
    """Predictions in `{schema}.{table}`, indexed by time and model."""

    def __init__(
        self,
        url: str,
        schema: str = "public",
        table: str = "predictions",
        flush_seconds: float = 1.0,
        flush_records: int = 5_000,
        max_buffered: int = 1_000_000,
        connect_timeout_s: int = 5,
    ) -> None:
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self._table = sql.Identifier(schema, table)
        self._conn: psycopg.Connection[Any] | None = None
        with self._connect() as conn, conn.transaction():
            # servers starting at once must not race on CREATE: one at a time
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL(_DDL).format(table=self._table))
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (ts, model)").format(
                    sql.Identifier(f"{table}_ts_model"), self._table
                )
            )
        super().__init__(flush_seconds, flush_records, max_buffered)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self.url, autocommit=True, connect_timeout=self.connect_timeout_s
            )
        except psycopg.Error as exc:
            raise UnavailableError(f"PostgreSQL prediction log unreachable: {exc}") from exc

    def _encode(self, records: list[PredictionRecord]) -> list[Row]:
        return to_rows(records)

    def _store(self, chunks: list[list[Row]]) -> None:
        rows = [row for chunk in chunks for row in chunk]
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
            self._table, sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        )
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            with self._conn.transaction(), self._conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            raise UnavailableError(f"PostgreSQL prediction log write failed: {exc}") from exc

    def _read(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        where: list[sql.Composable] = []
        params: list[datetime] = []
        if start is not None:
            where.append(sql.SQL("ts >= %s"))
            params.append(start)
        if end is not None:
            where.append(sql.SQL("ts < %s"))
            params.append(end)
        query = sql.SQL("SELECT {} FROM {}{} ORDER BY ts").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
            self._table,
            sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
        )
        try:
            with self._connect() as conn, conn.cursor() as cur:
                cur.execute(query, params)
                rows = cur.fetchall()
        except psycopg.Error as exc:
            raise UnavailableError(f"PostgreSQL prediction log read failed: {exc}") from exc
        if not rows:
            return finish_frame(SCHEMA.empty_table().to_pandas())
        return finish_frame(pd.DataFrame(rows, columns=list(COLUMNS)))

    def _release(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
