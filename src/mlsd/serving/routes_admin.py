"""Admin endpoints (bearer token checked by the security middleware): models and aliases."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from mlsd.errors import ConfigError
from mlsd.inference.host import parse_ref
from mlsd.inference.spec import LoadedModel
from mlsd.serving.routes_v1 import ERRORS, service_of
from mlsd.serving.schemas import AliasMoveRequest, LoadedModelInfo, ModelRef
from mlsd.serving.service import Service

router = APIRouter(prefix="/admin", tags=["admin"])


def _info(service: Service, model: LoadedModel) -> LoadedModelInfo:
    return LoadedModelInfo(
        name=model.name,
        version=model.version,
        runtime=model.runtime.name,
        aliases=service.host.aliases_of(model),
        feature_names=list(model.feature_names),
        loaded_at=model.loaded_at,
    )


@router.get("/models", response_model=list[LoadedModelInfo], responses=ERRORS)
async def list_models(request: Request) -> list[LoadedModelInfo]:
    """Every loaded version and the aliases pointing at it."""
    service = service_of(request)
    return [_info(service, m) for m in service.host.models()]


@router.post("/models/load", response_model=LoadedModelInfo, responses=ERRORS)
def load_model(request: Request, body: ModelRef) -> LoadedModelInfo:
    """Load and warm `name@alias` (followed from then on) or `name/version` (pinned)."""
    service = service_of(request)
    return _info(service, service.load(body.model))


@router.post("/models/unload", response_model=list[LoadedModelInfo], responses=ERRORS)
def unload_model(request: Request, body: ModelRef) -> list[LoadedModelInfo]:
    """Stop serving an alias or a version; answers with what stays loaded."""
    service = service_of(request)
    name, alias, version = parse_ref(body.model)
    service.host.unload(name, version=version, alias=alias)
    return [_info(service, m) for m in service.host.models()]


@router.post("/aliases", responses=ERRORS, summary="Move an alias in the registry")
def move_alias(request: Request, body: AliasMoveRequest) -> dict[str, Any]:
    """Point `name@alias` at `version` in the registry, then switch the host at once."""
    service = service_of(request)
    set_alias = getattr(service.host.registry, "set_alias", None)
    if set_alias is None:
        raise ConfigError("this registry cannot move aliases", field="registry")
    set_alias(body.name, body.alias, body.version, reason="serving admin API", actor="admin")
    switched = service.host.refresh()
    return {"name": body.name, "alias": body.alias, "version": body.version, "switched": switched}
