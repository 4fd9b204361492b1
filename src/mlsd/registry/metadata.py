"""The metadata store interface: where versions, tags, aliases and decisions live.

The embedded default is SQLite (`sqlite.py`); PostgreSQL (`postgres.py`) is the
shared-server backend. Both run the same SQL (`sql.py`) and pass one
conformance suite. Every write is one transaction: a killed writer leaves
nothing half-visible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from mlsd.registry.gate import GateDecision
from mlsd.registry.models import AliasMove, Environment, ModelSummary, ModelVersion, MoveKind


class MetadataStore(Protocol):
    """Versions, tags, aliases with their history, and gate decisions."""

    def add_version(self, draft: ModelVersion) -> ModelVersion:
        """Store `draft` under the next version number of its name (assigned atomically)."""
        ...

    def get_version(self, name: str, version: int) -> ModelVersion:
        """One version (NotFoundError when absent)."""
        ...

    def get_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version an alias points to (NotFoundError when unset), in one read."""
        ...

    def latest_version(self, name: str) -> int | None:
        """The highest version number of `name`, None when it has none."""
        ...

    def list_models(self) -> list[ModelSummary]:
        """Every registered model, by name."""
        ...

    def search(
        self,
        name: str | None = None,
        tag_key: str | None = None,
        tag_value: str | None = None,
        limit: int = 1000,
    ) -> list[ModelVersion]:
        """Versions matching every given filter, newest first within a name."""
        ...

    def set_tags(
        self, name: str, version: int, tags: Mapping[str, str], remove: Sequence[str] = ()
    ) -> ModelVersion:
        """Add or overwrite `tags`, delete the keys in `remove`."""
        ...

    def set_status(self, name: str, version: int, status: str) -> ModelVersion:
        """Mark a version `ready` or `archived`."""
        ...

    def aliases(self, name: str) -> dict[str, int]:
        """alias -> version for one model (cheap: serving polls it)."""
        ...

    def get_alias(self, name: str, alias: str) -> int:
        """The version an alias points to (NotFoundError when unset)."""
        ...

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
        """Point `alias` at `version` (None deletes it) and record the move, atomically.

        With `check_from`, `expected_from` must equal the current target, else
        ConflictError: the alias moved under the caller. `decision` is recorded
        in the same transaction.
        """
        ...

    def rollback_alias(
        self, name: str, alias: str, *, reason: str, actor: str, at: datetime
    ) -> AliasMove:
        """Move `alias` back to the version it pointed to before its latest move."""
        ...

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Every recorded move, oldest first."""
        ...

    def record_decision(self, decision: GateDecision) -> None:
        """Store a gate decision (a refused promotion, say)."""
        ...

    def decisions(self, name: str) -> list[GateDecision]:
        """Every gate decision on `name`, oldest first."""
        ...

    def environment(self, digest: str) -> Environment:
        """A stored environment by its digest."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
