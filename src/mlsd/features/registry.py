"""The definitions registry: every version of every feature view, and the history of changes.

`DefinitionRegistry` is the interface; `SqliteDefinitionRegistry` the embedded default;
`mlsd.features.registry_postgres` the PostgreSQL backend. Versions are immutable: applying
a changed definition adds a version and a change record, old versions stay readable.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from mlsd.errors import NotFoundError
from mlsd.features.definitions import FeatureView


@dataclass(frozen=True)
class Change:
    """One apply that changed the served version of a view."""

    view: str
    version: str
    previous: str | None
    applied_at: datetime


class DefinitionRegistry(Protocol):
    """Stores feature view definitions by (name, version) and the history of changes."""

    def apply(self, views: list[FeatureView]) -> dict[str, str]:
        """Record the views, make them current; name -> version."""
        ...

    def get(self, name: str, version: str | None = None) -> FeatureView:
        """A view's definition: the current one, or a given version."""
        ...

    def current(self) -> dict[str, str]:
        """name -> current version, for every view applied."""
        ...

    def versions(self, name: str) -> list[str]:
        """Every stored version of a view, oldest first."""
        ...

    def history(self) -> list[Change]:
        """Every change, oldest first."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def _now() -> datetime:
    return datetime.now(UTC)


def _plan(
    views: list[FeatureView], current: dict[str, str]
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str | None]]]:
    """Rows to insert: (name, version, json) definitions and (name, version, previous) changes."""
    defs, changes = [], []
    for view in views:
        version = view.version
        defs.append((view.name, version, json.dumps(view.to_dict(), sort_keys=True)))
        if current.get(view.name) != version:
            changes.append((view.name, version, current.get(view.name)))
    return defs, changes


class SqliteDefinitionRegistry:
    """The embedded registry: one SQLite file, one connection shared by threads under a lock.

    A server opens it on one thread and closes it on another (uvicorn's lifespan), so the
    connection is not tied to its creating thread.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(path), timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS feature_view_versions (
                name TEXT NOT NULL, version TEXT NOT NULL, definition TEXT NOT NULL,
                created_at TEXT NOT NULL, PRIMARY KEY (name, version));
            CREATE TABLE IF NOT EXISTS feature_view_changes (
                id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
                version TEXT NOT NULL, previous TEXT, applied_at TEXT NOT NULL);
            """
        )

    def apply(self, views: list[FeatureView]) -> dict[str, str]:
        """Record the views, make them current; name -> version."""
        with self._lock:
            now = _now().isoformat()
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                defs, changes = _plan(views, self.current())
                self._conn.executemany(
                    "INSERT OR IGNORE INTO feature_view_versions VALUES (?, ?, ?, ?)",
                    [(*d, now) for d in defs],
                )
                self._conn.executemany(
                    "INSERT INTO feature_view_changes (name, version, previous, applied_at) "
                    "VALUES (?, ?, ?, ?)",
                    [(*c, now) for c in changes],
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return {v.name: v.version for v in views}

    def get(self, name: str, version: str | None = None) -> FeatureView:
        """A view's definition: the current one, or a given version."""
        with self._lock:
            if version is None:
                version = self.current().get(name)
                if version is None:
                    raise NotFoundError(f"unknown feature view {name!r}", field="view")
            row = self._conn.execute(
                "SELECT definition FROM feature_view_versions WHERE name = ? AND version = ?",
                (name, version),
            ).fetchone()
            if row is None:
                raise NotFoundError(
                    f"unknown version {version!r} of view {name!r}", field="version"
                )
            return FeatureView.from_dict(json.loads(row[0]))

    def current(self) -> dict[str, str]:
        """name -> current version, for every view applied."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, version FROM feature_view_changes c WHERE id = "
                "(SELECT max(id) FROM feature_view_changes WHERE name = c.name)"
            ).fetchall()
            return {str(n): str(v) for n, v in rows}

    def versions(self, name: str) -> list[str]:
        """Every stored version of a view, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT version FROM feature_view_changes WHERE name = ? ORDER BY id", (name,)
            ).fetchall()
            seen: dict[str, None] = {str(r[0]): None for r in rows}
            return list(seen)

    def history(self) -> list[Change]:
        """Every change, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, version, previous, applied_at FROM feature_view_changes ORDER BY id"
            ).fetchall()
            return [Change(n, v, p, datetime.fromisoformat(a)) for n, v, p, a in rows]

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            self._conn.close()
