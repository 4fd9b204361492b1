"""What `status` shows of a rollout, the same in the CLI (`--json`) and the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from mlsd.registry.rollouts import RolloutState
from mlsd.rollout.manage import Rollout


class RolloutView(BaseModel):
    """A rollout: its spec, where it stands, and (from a server) what this process sees."""

    id: str
    endpoint: str
    kind: str
    state: RolloutState
    champion: int
    challenger: int
    step: int
    steps: list[float]
    share: float
    failed_checks: int
    checks: int
    started_at: datetime
    updated_at: datetime
    holder: str | None
    spec: dict[str, Any]
    #: Server only: the challenger's exposure seen by this process (canaries).
    exposed_requests: int | None = None
    exposed_customers: int | None = None
    #: Server only: why this process cannot carry the rollout out (its challenger did not load).
    error: str | None = None


def view(rollout: Rollout, **local: Any) -> RolloutView:
    """The view of a stored rollout (`local`: what the serving process adds)."""
    r, s = rollout.record, rollout.spec
    return RolloutView(
        id=r.id, endpoint=r.endpoint, kind=r.kind, state=r.state, champion=s.champion,
        challenger=s.challenger, step=r.step, steps=list(s.steps) if s.kind == "canary" else [],
        share=r.share, failed_checks=r.failed_checks, checks=r.checks,
        started_at=r.started_at, updated_at=r.updated_at, holder=r.holder,
        spec=s.model_dump(mode="json"), **local,
    )  # fmt: skip
