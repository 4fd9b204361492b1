"""Rollout state in the registry database: what every `mlsd serve` process routes by.

A rollout row holds its spec (JSON, validated above this package by `mlsd.rollout`), its
state, the current step and challenger share, the failed-check count and the lease of the
process whose controller decides for it. Every decision is an event row (the history).
The database enforces at most one running rollout per endpoint (a unique column set only
while running), and a change counter (`rollout_clock`) lets servers poll one integer to
learn that something moved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

RolloutState = Literal["running", "promoted", "aborted", "rolled_back"]
#: What an event records: the start, one analysis check, a step up, the end of a rollout.
EventKind = Literal["start", "check", "step", "promote", "abort", "rollback"]
ACTIVE: tuple[RolloutState, ...] = ("running",)


class RolloutRecord(BaseModel):
    """One rollout as stored: its spec, where it stands, who decides for it."""

    model_config = ConfigDict(frozen=True)

    id: str
    endpoint: str
    kind: str
    spec: str  # the RolloutSpec as JSON
    state: RolloutState
    step: int = 0  # index into the canary steps
    share: float = 0.0  # the challenger's share of customers now (percent)
    failed_checks: int = 0
    checks: int = 0
    started_at: datetime
    updated_at: datetime
    holder: str | None = None
    lease_until: datetime | None = None

    @property
    def active(self) -> bool:
        """Still routing traffic (running)."""
        return self.state in ACTIVE


class RolloutEvent(BaseModel):
    """One entry of a rollout's history: a check with its figures, a step, a decision."""

    model_config = ConfigDict(frozen=True)

    rollout_id: str
    at: datetime
    kind: EventKind
    step: int
    share: float
    decision: str
    actor: str
    reason: str = ""
    figures: dict[str, Any] = Field(default_factory=dict)


class AliasTarget(BaseModel):
    """An alias move made in the same transaction as a rollout's promotion or rollback."""

    model_config = ConfigDict(frozen=True)

    name: str
    alias: str
    version: int
    kind: Literal["promote", "rollback"]


class RolloutStore(Protocol):
    """Rollout rows, their history and the change counter (`SqlMetadataStore` has them)."""

    def create_rollout(self, record: RolloutRecord, event: RolloutEvent) -> RolloutRecord:
        """Store a new running rollout (ConflictError: the id is taken, or the endpoint
        already has a running rollout)."""
        ...

    def get_rollout(self, rollout_id: str) -> RolloutRecord:
        """One rollout (NotFoundError when absent)."""
        ...

    def list_rollouts(
        self, endpoint: str | None = None, *, active_only: bool = False
    ) -> list[RolloutRecord]:
        """Rollouts, newest first."""
        ...

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
        """Apply `changes` (state, step, share, failed_checks, checks) and record `event`,
        with `move` in the same transaction, if the rollout is in one of `expect_states`
        (and has done `expect_checks` checks): ConflictError otherwise."""
        ...

    def rollout_events(self, rollout_id: str) -> list[RolloutEvent]:
        """The history of one rollout, oldest first."""
        ...

    def rollout_clock(self) -> int:
        """A counter bumped by every rollout change (servers poll it)."""
        ...

    def take_lease(self, rollout_id: str, holder: str, *, now: datetime, until: datetime) -> bool:
        """Become (or stay) the one process deciding for a running rollout, until `until`;
        False while another holder's lease has not run out."""
        ...
