"""Alias moves, rollback and gate decisions in SQL, shared by both metadata backends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from datetime import datetime

from mlsd.errors import ConflictError, NotFoundError
from mlsd.registry.aliases import rollback_target
from mlsd.registry.gate import GateDecision
from mlsd.registry.models import AliasMove, MoveKind
from mlsd.registry.sql_schema import MOVE_COLUMNS, Tx, move_from_row, ts


class SqlAliases(ABC):
    """The alias half of `SqlMetadataStore`: every move is one transaction plus a history row."""

    for_update = ""

    @abstractmethod
    def _write(self) -> AbstractContextManager[Tx]:
        """A write transaction holding the lock that serialises writers."""

    @abstractmethod
    def _read(self) -> AbstractContextManager[Tx]:
        """A session for reads."""

    @abstractmethod
    def _require_version(self, tx: Tx, name: str, version: int) -> None:
        """NotFoundError unless the version exists."""

    def aliases(self, name: str) -> dict[str, int]:
        with self._read() as tx:
            rows = tx.run("SELECT alias, version FROM aliases WHERE name = ?", (name,))
        return dict(sorted(rows))

    def get_alias(self, name: str, alias: str) -> int:
        with self._read() as tx:
            rows = tx.run("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias))
        if not rows:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}", field="alias")
        return int(rows[0][0])

    def _lock_model(self, tx: Tx, name: str) -> None:
        if not tx.run(
            f"SELECT last_version FROM registered_models WHERE name = ?{self.for_update}", (name,)
        ):
            raise NotFoundError(f"no registered model {name!r}", field="name")

    def _current(self, tx: Tx, name: str, alias: str) -> int | None:
        rows = tx.run("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias))
        return int(rows[0][0]) if rows else None

    def move_alias(
        self,
        name: str,
        alias: str,
        version: int | None,
        *,
        kind: MoveKind,
        reason: str,
        actor: str,
        at: datetime,
        check_from: bool = False,
        expected_from: int | None = None,
        decision: GateDecision | None = None,
    ) -> AliasMove:
        with self._write() as tx:
            self._lock_model(tx, name)
            current = self._current(tx, name, alias)
            if check_from and current != expected_from:
                raise ConflictError(
                    f"{name}@{alias} moved to {current} meanwhile (expected {expected_from})",
                    field="alias",
                )
            if version is None and current is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}", field="alias")
            if version is not None:
                self._require_version(tx, name, version)
            move = AliasMove(
                name=name,
                alias=alias,
                from_version=current,
                to_version=version,
                at=at,
                kind=kind,
                reason=reason,
                actor=actor,
            )
            self._apply(tx, move)
            if decision is not None:
                self._insert_decision(tx, decision)
            return move

    def rollback_alias(
        self, name: str, alias: str, *, reason: str, actor: str, at: datetime
    ) -> AliasMove:
        with self._write() as tx:
            self._lock_model(tx, name)
            history = [move_from_row(r) for r in tx.run(self._history_sql(True), (name, alias))]
            target = rollback_target(history)
            move = AliasMove(
                name=name,
                alias=alias,
                from_version=self._current(tx, name, alias),
                to_version=target,
                at=at,
                kind="rollback",
                reason=reason,
                actor=actor,
            )
            self._apply(tx, move)
            return move

    def _apply(self, tx: Tx, move: AliasMove) -> None:
        if move.to_version is None:
            tx.run("DELETE FROM aliases WHERE name = ? AND alias = ?", (move.name, move.alias))
        else:
            tx.run(
                "INSERT INTO aliases (name, alias, version) VALUES (?, ?, ?)"
                " ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
                (move.name, move.alias, move.to_version),
            )
        tx.run(
            f"INSERT INTO alias_moves ({MOVE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                move.name,
                move.alias,
                move.from_version,
                move.to_version,
                ts(move.at),
                move.kind,
                move.reason,
                move.actor,
            ),
        )

    @staticmethod
    def _history_sql(with_alias: bool) -> str:
        where = "name = ? AND alias = ?" if with_alias else "name = ?"
        return f"SELECT {MOVE_COLUMNS} FROM alias_moves WHERE {where} ORDER BY seq"

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        params = (name,) if alias is None else (name, alias)
        with self._read() as tx:
            return [move_from_row(r) for r in tx.run(self._history_sql(alias is not None), params)]

    # -- gate decisions and environments ------------------------------------

    def _insert_decision(self, tx: Tx, decision: GateDecision) -> None:
        tx.run(
            "INSERT INTO gate_decisions (name, version, alias, at, body) VALUES (?, ?, ?, ?, ?)",
            (
                decision.name,
                decision.version,
                decision.alias,
                ts(decision.at),
                decision.model_dump_json(),
            ),
        )

    def record_decision(self, decision: GateDecision) -> None:
        with self._write() as tx:
            self._insert_decision(tx, decision)

    def decisions(self, name: str) -> list[GateDecision]:
        with self._read() as tx:
            rows = tx.run("SELECT body FROM gate_decisions WHERE name = ? ORDER BY seq", (name,))
        return [GateDecision.model_validate_json(r[0]) for r in rows]
