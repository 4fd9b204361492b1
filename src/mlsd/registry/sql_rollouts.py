"""Rollout rows, events, leases and the change counter in SQL, shared by both backends.

"At most one running rollout per endpoint" is the database's job: `active_endpoint` is the
endpoint while the rollout runs and NULL after, under a unique index (both SQLite and
PostgreSQL let NULLs repeat). Inserts use `ON CONFLICT DO NOTHING`, so two servers racing
to start a rollout get one row and one clear ConflictError, never a driver exception.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from mlsd.errors import ConflictError, NotFoundError, ValidationError
from mlsd.registry.models import AliasMove
from mlsd.registry.rollouts import ACTIVE, AliasTarget, RolloutEvent, RolloutRecord, RolloutState
from mlsd.registry.sql_aliases import SqlAliases
from mlsd.registry.sql_schema import Row, Tx, ts

COLUMNS = (
    "id, endpoint, kind, spec, state, step, share, failed_checks, checks, started_at,"
    " updated_at, holder, lease_until"
)
EVENT_COLUMNS = "rollout_id, at, kind, step, share, decision, actor, reason, figures"
CHANGEABLE = frozenset({"state", "step", "share", "failed_checks", "checks"})


def _record(row: Row) -> RolloutRecord:
    (rid, endpoint, kind, spec, state, step, share, failed, checks, started, updated,
     holder, lease) = row  # fmt: skip
    return RolloutRecord(
        id=rid, endpoint=endpoint, kind=kind, spec=spec, state=state, step=step,
        share=float(share), failed_checks=failed, checks=checks,
        started_at=datetime.fromisoformat(started), updated_at=datetime.fromisoformat(updated),
        holder=holder, lease_until=None if lease is None else datetime.fromisoformat(lease),
    )  # fmt: skip


def _event(row: Row) -> RolloutEvent:
    rid, at, kind, step, share, decision, actor, reason, figures = row
    return RolloutEvent(
        rollout_id=rid, at=datetime.fromisoformat(at), kind=kind, step=step,
        share=float(share), decision=decision, actor=actor, reason=reason,
        figures=json.loads(figures),
    )  # fmt: skip


class SqlRollouts(SqlAliases):
    """The rollout half of `SqlMetadataStore` (see `mlsd.registry.rollouts.RolloutStore`)."""

    def create_rollout(self, record: RolloutRecord, event: RolloutEvent) -> RolloutRecord:
        with self._write() as tx:
            inserted = tx.run(
                f"INSERT INTO rollouts ({COLUMNS}, active_endpoint)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING RETURNING id",
                (
                    record.id, record.endpoint, record.kind, record.spec, record.state,
                    record.step, record.share, record.failed_checks, record.checks,
                    ts(record.started_at), ts(record.updated_at), record.holder, None,
                    record.endpoint if record.active else None,
                ),
            )  # fmt: skip
            if not inserted:
                taken = tx.run("SELECT state FROM rollouts WHERE id = ?", (record.id,))
                if taken:
                    raise ConflictError(
                        f"a rollout named {record.id!r} exists already ({taken[0][0]})",
                        field="id",
                    )
                running = tx.run(
                    "SELECT id FROM rollouts WHERE active_endpoint = ?", (record.endpoint,)
                )
                other = running[0][0] if running else "?"
                raise ConflictError(
                    f"endpoint {record.endpoint!r} already has a running rollout ({other}): "
                    "promote, abort or roll it back first",
                    field="endpoint",
                )
            self._insert_event(tx, event)
            self._tick(tx)
        return record

    def get_rollout(self, rollout_id: str) -> RolloutRecord:
        with self._read() as tx:
            return self._get(tx, rollout_id)

    def _get(self, tx: Tx, rollout_id: str) -> RolloutRecord:
        rows = tx.run(f"SELECT {COLUMNS} FROM rollouts WHERE id = ?", (rollout_id,))
        if not rows:
            raise NotFoundError(f"no rollout named {rollout_id!r}", field="rollout")
        return _record(rows[0])

    def list_rollouts(
        self, endpoint: str | None = None, *, active_only: bool = False
    ) -> list[RolloutRecord]:
        where, params = [], []
        if endpoint is not None:
            where.append("endpoint = ?")
            params.append(endpoint)
        if active_only:
            where.append("active_endpoint IS NOT NULL")
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        with self._read() as tx:
            rows = tx.run(
                f"SELECT {COLUMNS} FROM rollouts{clause} ORDER BY started_at DESC, id", params
            )
        return [_record(r) for r in rows]

    def transition(
        self,
        rollout_id: str,
        event: RolloutEvent,
        *,
        expect_states: tuple[RolloutState, ...] = ACTIVE,
        expect_checks: int | None = None,
        move: AliasTarget | None = None,
        **changes: Any,
    ) -> RolloutRecord:
        unknown = set(changes) - CHANGEABLE
        if unknown:
            raise ValidationError(f"cannot change {sorted(unknown)} of a rollout", field="rollout")
        with self._write() as tx:
            current = self._get(tx, rollout_id)
            if current.state not in expect_states:
                raise ConflictError(
                    f"rollout {rollout_id!r} is {current.state}, not "
                    f"{' or '.join(expect_states)}: cannot {event.kind} it",
                    field="state",
                )
            if expect_checks is not None and current.checks != expect_checks:
                raise ConflictError(
                    f"rollout {rollout_id!r} was checked meanwhile by another process",
                    field="checks",
                )
            updated = current.model_copy(update={**changes, "updated_at": event.at})
            tx.run(
                "UPDATE rollouts SET state = ?, step = ?, share = ?, failed_checks = ?,"
                " checks = ?, updated_at = ?, active_endpoint = ? WHERE id = ?",
                (
                    updated.state, updated.step, updated.share, updated.failed_checks,
                    updated.checks, ts(updated.updated_at),
                    updated.endpoint if updated.active else None, rollout_id,
                ),
            )  # fmt: skip
            if move is not None:
                self._move_in(tx, move, event)
            self._insert_event(tx, event)
            self._tick(tx)
        return updated

    def _move_in(self, tx: Tx, target: AliasTarget, event: RolloutEvent) -> None:
        self._lock_model(tx, target.name)
        self._require_version(tx, target.name, target.version)
        self._apply(
            tx,
            AliasMove(
                name=target.name, alias=target.alias,
                from_version=self._current(tx, target.name, target.alias),
                to_version=target.version, at=event.at, kind=target.kind,
                reason=f"rollout {event.rollout_id}: {event.reason}", actor=event.actor,
            ),
        )  # fmt: skip

    def rollout_events(self, rollout_id: str) -> list[RolloutEvent]:
        with self._read() as tx:
            self._get(tx, rollout_id)
            rows = tx.run(
                f"SELECT {EVENT_COLUMNS} FROM rollout_events WHERE rollout_id = ? ORDER BY seq",
                (rollout_id,),
            )
        return [_event(r) for r in rows]

    def rollout_clock(self) -> int:
        with self._read() as tx:
            rows = tx.run("SELECT version FROM rollout_clock WHERE id = 1")
        return int(rows[0][0]) if rows else 0

    def take_lease(self, rollout_id: str, holder: str, *, now: datetime, until: datetime) -> bool:
        with self._write() as tx:
            rows = tx.run(
                "UPDATE rollouts SET holder = ?, lease_until = ? WHERE id = ?"
                " AND active_endpoint IS NOT NULL"
                " AND (holder IS NULL OR holder = ? OR lease_until IS NULL OR lease_until < ?)"
                " RETURNING id",
                (holder, ts(until), rollout_id, holder, ts(now)),
            )
        return bool(rows)

    @staticmethod
    def _insert_event(tx: Tx, event: RolloutEvent) -> None:
        tx.run(
            f"INSERT INTO rollout_events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.rollout_id, ts(event.at), event.kind, event.step, event.share,
                event.decision, event.actor, event.reason,
                json.dumps(event.figures, allow_nan=False, default=str),
            ),
        )  # fmt: skip

    @staticmethod
    def _tick(tx: Tx) -> None:
        tx.run(
            "INSERT INTO rollout_clock (id, version) VALUES (1, 1)"
            " ON CONFLICT (id) DO UPDATE SET version = rollout_clock.version + 1"
        )
