"""Turn a registered version into a live model: a LightGBM Booster or an ONNX session.

Every load verifies the artifact's sha256 and reports (to the log and in the
result) what differs between the recorded environment and this one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mlsd.errors import IntegrityError
from mlsd.registry.models import ModelVersion
from mlsd.registry.registry import Registry

LIGHTGBM_FILE = "model.lgb.txt"
ONNX_FILE = "model.onnx"
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
    text = registry.load_artifact(mv, LIGHTGBM_FILE).decode("utf-8")
    try:
        booster = lgb.Booster(model_str=text)
    except (lgb.basic.LightGBMError, ValueError) as exc:
        raise IntegrityError(
            f"{mv.uri}: unreadable LightGBM model: {exc}", field="artifacts"
        ) from exc
    return LoadedModel(mv, booster, _check_env(registry, mv))


def load_onnx(registry: Registry, model: str | ModelVersion) -> LoadedModel:
    """Resolve, read, verify and build an `onnxruntime.InferenceSession` (CPU)."""
    import onnxruntime as ort

    mv = _target(registry, model)
    data = registry.load_artifact(mv, ONNX_FILE)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except (RuntimeError, ValueError) as exc:
        raise IntegrityError(f"{mv.uri}: unreadable ONNX model: {exc}", field="artifacts") from exc
    return LoadedModel(mv, session, _check_env(registry, mv))
