"""Turn a registered version into a live model: a LightGBM Booster or an ONNX session.

Every load verifies the artifact's sha256 and reports (to the log and in the
result) what differs between the recorded environment and this one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mlsd.errors import IntegrityError
from mlsd.registry.formats import LIGHTGBM_ARTIFACT, ONNX_ARTIFACT, onnx_session
from mlsd.registry.models import ModelVersion
from mlsd.registry.registry import Registry

log = logging.getLogger("mlsd.registry")


@dataclass(frozen=True)
class LoadedModel:
    """A model object with the version it came from and its environment differences."""

    version: ModelVersion
    model: Any
    environment_diff: dict[str, Any]


def _target(registry: Registry, model: str | ModelVersion) -> ModelVersion:
    return registry.resolve(model) if isinstance(model, str) else model


def _check_env(registry: Registry, mv: ModelVersion) -> dict[str, Any]:
    differences = registry.environment_diff(mv)
    if differences:
        changed = differences.get("packages", {}).get("changed", {})
        log.warning(
            "%s was registered in a different environment: %s; changed packages: %s",
            mv.uri,
            sorted(k for k in differences if k != "packages"),
            sorted(changed),
        )
    return differences


def load_lightgbm(registry: Registry, model: str | ModelVersion) -> LoadedModel:
    """Resolve, read, verify and build a `lightgbm.Booster` from the model text."""
    import lightgbm as lgb

    mv = _target(registry, model)
    text = registry.load_artifact(mv, LIGHTGBM_ARTIFACT).decode("utf-8")
    try:
        booster = lgb.Booster(model_str=text)
    except (lgb.basic.LightGBMError, ValueError) as exc:
        raise IntegrityError(
            f"{mv.uri}: unreadable LightGBM model: {exc}", field="artifacts"
        ) from exc
    return LoadedModel(mv, booster, _check_env(registry, mv))


def load_onnx(registry: Registry, model: str | ModelVersion) -> LoadedModel:
    """Resolve, read, verify and build the ONNX session (`formats.onnx_session`)."""
    mv = _target(registry, model)
    data = registry.load_artifact(mv, ONNX_ARTIFACT)
    session = onnx_session(data, source=f"{mv.uri} ({ONNX_ARTIFACT})")
    return LoadedModel(mv, session, _check_env(registry, mv))
