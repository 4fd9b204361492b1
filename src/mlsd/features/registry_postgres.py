"""The definitions registry on PostgreSQL (`MLSD_FEATURE_REGISTRY=postgresql://...[?schema=]`).

The tables live in `schema`, created if missing; first opens that race take an advisory
lock, so concurrent processes do not collide on CREATE.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from mlsd.errors import ConfigError, NotFoundError, UnavailableError
from mlsd.features.definitions import FeatureView
from mlsd.features.registry import Change, _plan

_DDL_LOCK = 0x6D6C7366  # advisory lock id ("mlsf"): concurrent first opens do not race
_DDL = """
CREATE TABLE IF NOT EXISTS feature_view_versions (
    name TEXT NOT NULL, version TEXT NOT NULL, definition JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS feature_view_changes (
    id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, version TEXT NOT NULL,
    previous TEXT, applied_at TIMESTAMPTZ NOT NULL);
"""


class PostgresDefinitionRegistry:
    """Feature view versions and change history in one PostgreSQL schema."""

    def __init__(self, url: str, schema: str = "public", connect_timeout: float = 10.0) -> None:
        import psycopg
        from psycopg import sql

        try:
            self._conn: Any = psycopg.connect(
                url, autocommit=True, connect_timeout=max(1, round(connect_timeout))
            )
        except psycopg.ProgrammingError as exc:  # a malformed connection string
            raise ConfigError(f"bad feature registry URL: {exc}", field="feature_registry") from exc
        except psycopg.OperationalError as exc:
            raise UnavailableError(f"PostgreSQL feature registry unreachable: {exc}") from exc
        name = sql.Identifier(schema)
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            self._conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
            self._conn.execute(sql.SQL("SET search_path TO {}").format(name))
            self._conn.execute(_DDL)

    def apply(self, views: list[FeatureView]) -> dict[str, str]:
        """Record the views, make them current; name -> version."""
        now = datetime.now(UTC)
        with self._conn.transaction():
            self._conn.execute("LOCK TABLE feature_view_changes IN EXCLUSIVE MODE")
            defs, changes = _plan(views, self.current())
            with self._conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO feature_view_versions VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    [(*d, now) for d in defs],
                )
                cur.executemany(
                    "INSERT INTO feature_view_changes (name, version, previous, applied_at) "
                    "VALUES (%s, %s, %s, %s)",
                    [(*c, now) for c in changes],
                )
        return {v.name: v.version for v in views}

    def get(self, name: str, version: str | None = None) -> FeatureView:
        """A view's definition: the current one, or a given version."""
        if version is None:
            version = self.current().get(name)
            if version is None:
                raise NotFoundError(f"unknown feature view {name!r}", field="view")
        row = self._conn.execute(
            "SELECT definition FROM feature_view_versions WHERE name = %s AND version = %s",
            (name, version),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"unknown version {version!r} of view {name!r}", field="version")
        data = row[0] if isinstance(row[0], dict) else json.loads(row[0])
        return FeatureView.from_dict(data)

    def current(self) -> dict[str, str]:
        """name -> current version, for every view applied."""
        rows = self._conn.execute(
            "SELECT DISTINCT ON (name) name, version FROM feature_view_changes "
            "ORDER BY name, id DESC"
        ).fetchall()
        return {str(n): str(v) for n, v in rows}

    def versions(self, name: str) -> list[str]:
        """Every stored version of a view, oldest first."""
        rows = self._conn.execute(
            "SELECT version FROM feature_view_changes WHERE name = %s ORDER BY id", (name,)
        ).fetchall()
        seen: dict[str, None] = {str(r[0]): None for r in rows}
        return list(seen)

    def history(self) -> list[Change]:
        """Every change, oldest first."""
        rows = self._conn.execute(
            "SELECT name, version, previous, applied_at FROM feature_view_changes ORDER BY id"
        ).fetchall()
        return [Change(str(n), str(v), p, a) for n, v, p, a in rows]

    def close(self) -> None:
        """Release the connection."""
        self._conn.close()
