"""The model interface shared by every fraud model, and the factory that picks one.

Each flavor lives in its own module (`gbm` for LightGBM, `logistic` for the baseline)
and is stored without pickle: ONNX for serving plus a text form for audits and reloads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from mlsd.errors import IntegrityError, ValidationError
from mlsd.registry.formats import (
    FLAVORS,
    ONNX_ARTIFACT,
    ONNX_FLAVOR,
    ONNX_INPUT,
    ONNX_OUTPUT,
    check_flavor,
    check_onnx_contract,
    onnx_session,
)

FloatArray = NDArray[np.float64]
Scorer = Callable[[NDArray[Any]], FloatArray]
"""Maps a feature matrix (rows x features, model order) to fraud probabilities."""

__all__ = [
    "FLAVORS",
    "FloatArray",
    "FraudModel",
    "Scorer",
    "as_matrix",
    "load_scorer",
    "make_model",
    "onnx_scorer",
]


class FraudModel(Protocol):
    """A binary fraud classifier: fit, score, and export its artifacts."""

    flavor: str
    params: dict[str, Any]

    def fit(self, X: NDArray[Any], y: NDArray[Any]) -> None:
        """Train on a float matrix `X` and 0/1 labels `y`."""
        ...

    def predict(self, X: NDArray[Any]) -> FloatArray:
        """Fraud probability of each row."""
        ...

    def artifacts(self, feature_names: list[str]) -> dict[str, bytes]:
        """The stored files: `model.onnx` and the flavor's own text form."""
        ...


def as_matrix(X: NDArray[Any]) -> NDArray[np.float32]:
    """Features as float32, the precision the ONNX model and serving use."""
    matrix = np.ascontiguousarray(X, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValidationError("features must be a 2-D matrix", field="X")
    return matrix


def make_model(
    flavor: str, params: Mapping[str, Any], *, seed: int = 0, num_threads: int = 1
) -> FraudModel:
    """A fresh, unfitted model of `flavor` with `params`."""
    check_flavor(flavor, field="model")
    if flavor == "lightgbm":
        from mlsd.training.gbm import LightGBMModel

        return LightGBMModel(params, seed=seed, num_threads=num_threads)
    if flavor == "logistic":
        from mlsd.training.logistic import LogisticModel

        return LogisticModel(params, seed=seed)
    raise NotImplementedError(f"flavor {flavor!r} has no model class")


def load_scorer(flavor: str, artifacts: Mapping[str, bytes]) -> Scorer:
    """A scorer rebuilt from stored artifacts, in the flavor's native form (not ONNX).

    An `onnx` flavor (a compressed neural variant) has no other form: its graph scores.
    """
    if flavor == ONNX_FLAVOR:
        if ONNX_ARTIFACT not in artifacts:
            raise IntegrityError(f"the model has no {ONNX_ARTIFACT} artifact", field="artifacts")
        return onnx_scorer(artifacts[ONNX_ARTIFACT])
    check_flavor(flavor)
    if flavor == "lightgbm":
        from mlsd.training.gbm import load_booster_scorer

        return load_booster_scorer(artifacts)
    if flavor == "logistic":
        from mlsd.training.logistic import load_coefficients_scorer

        return load_coefficients_scorer(artifacts)
    raise NotImplementedError(f"flavor {flavor!r} has no native scorer")


def onnx_scorer(model_bytes: bytes) -> Scorer:
    """A scorer running `model.onnx` in serving's session (column 1 of `probabilities`)."""
    session = onnx_session(model_bytes)
    check_onnx_contract(session)

    def score(X: NDArray[Any]) -> FloatArray:
        (probabilities,) = session.run([ONNX_OUTPUT], {ONNX_INPUT: as_matrix(X)})
        return np.asarray(probabilities, dtype=np.float64)[:, 1]

    return score
