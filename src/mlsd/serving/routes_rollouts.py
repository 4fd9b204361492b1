"""Admin endpoints for rollouts (bearer token, as every `/admin` route): start, status,
promote, abort, roll back, history. The same `RolloutManager` as `mlsd rollout`; after a
change this server applies it at once, the others within their poll interval."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from mlsd.errors import ConfigError
from mlsd.registry.rollouts import RolloutEvent
from mlsd.rollout.agent import RolloutAgent
from mlsd.rollout.manage import Rollout
from mlsd.rollout.spec import RolloutSpec
from mlsd.rollout.view import RolloutView, view
from mlsd.serving.routes_v1 import ERRORS, service_of

router = APIRouter(prefix="/admin/rollouts", tags=["admin"])

SPEC_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": RolloutSpec.model_json_schema()},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


def _agent(request: Request) -> RolloutAgent:
    agent = service_of(request).rollouts
    if agent is None:
        raise ConfigError("this server's models do not come from a registry", field="registry")
    return agent


def rollout_view(agent: RolloutAgent, rollout: Rollout) -> RolloutView:
    """A stored rollout with what this process sees of it (its exposure, its error)."""
    here = agent.installed.get(rollout.record.id)
    analysis = here.analysis if here is not None else None
    return view(
        rollout,
        exposed_requests=analysis.exposed_requests if analysis else None,
        exposed_customers=len(analysis.exposed_customers) if analysis else None,
        error=agent.errors.get(rollout.record.id),
    )


@router.post("", response_model=RolloutView, responses=ERRORS, openapi_extra=SPEC_BODY,
             status_code=201, summary="Start a rollout")  # fmt: skip
async def start(request: Request) -> RolloutView:
    """Start the rollout of the spec in the body (JSON or YAML); 4xx naming the field if the
    spec, its versions or its endpoint do not allow it."""
    agent = _agent(request)
    body = (await request.body()).decode("utf-8", errors="replace")
    spec = RolloutSpec.parse(body, source="body")
    rollout = agent.manager.start(spec, actor="admin")
    agent.sync()
    return rollout_view(agent, rollout)


@router.get("", response_model=list[RolloutView], responses=ERRORS)
def status_all(request: Request, active: bool = False) -> list[RolloutView]:
    """Every rollout, newest first (`?active=true`: the running ones)."""
    agent = _agent(request)
    return [rollout_view(agent, r) for r in agent.manager.rollouts(active_only=active)]


@router.get("/{rollout_id}", response_model=RolloutView, responses=ERRORS)
def status(request: Request, rollout_id: str) -> RolloutView:
    """One rollout."""
    agent = _agent(request)
    return rollout_view(agent, agent.manager.get(rollout_id))


@router.get("/{rollout_id}/history", response_model=list[RolloutEvent], responses=ERRORS)
def history(request: Request, rollout_id: str) -> list[RolloutEvent]:
    """Every step, check (with its figures) and decision of a rollout, oldest first."""
    return _agent(request).manager.history(rollout_id)


def _act(request: Request, rollout_id: str, verb: str) -> RolloutView:
    agent = _agent(request)
    manager = agent.manager
    action = {"promote": manager.promote, "abort": manager.abort, "rollback": manager.rollback}
    rollout = action[verb](rollout_id, actor="admin")
    agent.sync()
    return rollout_view(agent, rollout)


@router.post("/{rollout_id}/promote", response_model=RolloutView, responses=ERRORS)
def promote(request: Request, rollout_id: str) -> RolloutView:
    """Move the alias to the challenger now (409 unless running)."""
    return _act(request, rollout_id, "promote")


@router.post("/{rollout_id}/abort", response_model=RolloutView, responses=ERRORS)
def abort(request: Request, rollout_id: str) -> RolloutView:
    """Stop: all traffic back on the champion (409 unless running)."""
    return _act(request, rollout_id, "abort")


@router.post("/{rollout_id}/rollback", response_model=RolloutView, responses=ERRORS)
def rollback(request: Request, rollout_id: str) -> RolloutView:
    """Back to the pinned champion (a promoted rollout moves the alias back)."""
    return _act(request, rollout_id, "rollback")
