"""The SQL schema and plumbing both metadata backends share.

Tables: `registered_models` (one row per name, holding the version counter),
`model_versions` (immutable JSON body + status), `version_tags`, `aliases`,
`alias_moves` (the history), `environments` (stored once per digest),
`gate_decisions`, and the rollout state (`rollouts`, `rollout_events`, `rollout_clock`:
see `sql_rollouts`). The body holds the fields of `BODY_FIELDS` (the decision threshold
among them, so registries made before it existed need no migration: their versions
read `threshold=None`). Timestamps are ISO-8601 UTC text, so both backends sort them
the same way. SQL is written with `?` placeholders.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from mlsd.registry.models import AliasMove

Row = tuple[Any, ...]

DDL = (
    "CREATE TABLE IF NOT EXISTS registered_models (name TEXT PRIMARY KEY,"
    " created_at TEXT NOT NULL, last_version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS model_versions (name TEXT NOT NULL, version INTEGER NOT NULL,"
    " created_at TEXT NOT NULL, status TEXT NOT NULL, env_hash TEXT NOT NULL,"
    " body TEXT NOT NULL, PRIMARY KEY (name, version))",
    "CREATE TABLE IF NOT EXISTS version_tags (name TEXT NOT NULL, version INTEGER NOT NULL,"
    " key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (name, version, key))",
    "CREATE INDEX IF NOT EXISTS version_tags_kv ON version_tags (key, value)",
    "CREATE TABLE IF NOT EXISTS aliases (name TEXT NOT NULL, alias TEXT NOT NULL,"
    " version INTEGER NOT NULL, PRIMARY KEY (name, alias))",
    "CREATE TABLE IF NOT EXISTS alias_moves (seq {serial}, name TEXT NOT NULL,"
    " alias TEXT NOT NULL, from_version INTEGER, to_version INTEGER, at TEXT NOT NULL,"
    " kind TEXT NOT NULL, reason TEXT NOT NULL, actor TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS alias_moves_name ON alias_moves (name, alias, seq)",
    "CREATE TABLE IF NOT EXISTS environments (hash TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS gate_decisions (seq {serial}, name TEXT NOT NULL,"
    " version INTEGER NOT NULL, alias TEXT NOT NULL, at TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rollouts (id TEXT PRIMARY KEY, endpoint TEXT NOT NULL,"
    " kind TEXT NOT NULL, spec TEXT NOT NULL, state TEXT NOT NULL, step INTEGER NOT NULL,"
    " share DOUBLE PRECISION NOT NULL, failed_checks INTEGER NOT NULL,"
    " checks INTEGER NOT NULL, started_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    " holder TEXT, lease_until TEXT, active_endpoint TEXT UNIQUE)",
    "CREATE TABLE IF NOT EXISTS rollout_events (seq {serial}, rollout_id TEXT NOT NULL,"
    " at TEXT NOT NULL, kind TEXT NOT NULL, step INTEGER NOT NULL,"
    " share DOUBLE PRECISION NOT NULL, decision TEXT NOT NULL, actor TEXT NOT NULL,"
    " reason TEXT NOT NULL, figures TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS rollout_events_id ON rollout_events (rollout_id, seq)",
    "CREATE TABLE IF NOT EXISTS rollout_clock (id INTEGER PRIMARY KEY, version BIGINT NOT NULL)",
)
MOVE_COLUMNS = "name, alias, from_version, to_version, at, kind, reason, actor"


class Tx(Protocol):
    """A transaction (or autocommit session) that runs one statement and returns its rows."""

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


def ts(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def move_from_row(row: Row) -> AliasMove:
    name, alias, frm, to, at, kind, reason, actor = row
    return AliasMove(
        name=name,
        alias=alias,
        from_version=frm,
        to_version=to,
        at=datetime.fromisoformat(at),
        kind=kind,
        reason=reason,
        actor=actor,
    )
