"""Model runtimes: ONNX Runtime by default, LightGBM native as the fallback.

A runtime turns a float32 feature matrix (n, k) into the fraud probability of
each row. It is built from artifact bytes already checked by the registry.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mlsd.errors import IntegrityError, ValidationError
from mlsd.registry.formats import (
    LIGHTGBM_ARTIFACT,
    ONNX_ARTIFACT,
    ONNX_INPUT,
    ONNX_OUTPUT,
    check_onnx_contract,
    onnx_session,
)

__all__ = [  # the artifact and tensor names are re-exported from mlsd.registry.formats
    "LIGHTGBM_ARTIFACT",
    "ONNX_ARTIFACT",
    "ONNX_INPUT",
    "ONNX_OUTPUT",
    "LightGBMRuntime",
    "OnnxRuntime",
    "Runtime",
    "check_matrix",
]


class Runtime(Protocol):
    """Scores a batch of feature rows."""

    name: str
    n_features: int

    def predict(self, values: np.ndarray) -> np.ndarray:
        """Fraud probability (n,) float64 of each row of `values` (n, k) float32."""
        ...


class OnnxRuntime:
    """The ONNX Runtime session of `mlsd.registry.formats.onnx_session` (one thread)."""

    name = "onnxruntime"

    def __init__(self, model_bytes: bytes, n_features: int) -> None:
        self._session = onnx_session(model_bytes)
        check_onnx_contract(self._session, n_features=n_features)
        self.n_features = n_features
        self._outputs = [ONNX_OUTPUT]

    def predict(self, values: np.ndarray) -> np.ndarray:
        """Fraud probability of each row (column 1 of the probabilities output)."""
        out = self._session.run(self._outputs, {ONNX_INPUT: values})[0]
        return np.asarray(out, dtype=np.float64)[:, 1]


class LightGBMRuntime:
    """A LightGBM booster read from its model text."""

    name = "lightgbm"

    def __init__(self, model_text: bytes, n_features: int) -> None:
        import lightgbm as lgb

        try:
            self._booster = lgb.Booster(model_str=model_text.decode("utf-8"))
        except Exception as exc:
            raise IntegrityError(f"LightGBM model does not load: {exc}") from exc
        if self._booster.num_feature() != n_features:
            raise IntegrityError(
                f"LightGBM model has {self._booster.num_feature()} features but the signature "
                f"names {n_features}"
            )
        self.n_features = n_features

    def predict(self, values: np.ndarray) -> np.ndarray:
        """Fraud probability of each row."""
        out = self._booster.predict(values, num_threads=1)
        return np.asarray(out, dtype=np.float64).reshape(-1)


def check_matrix(values: np.ndarray, n_features: int) -> np.ndarray:
    """`values` as a C-contiguous float32 (n, n_features) matrix, or a ValidationError."""
    if values.ndim != 2 or values.shape[1] != n_features:
        raise ValidationError(
            f"expected a matrix of shape [n, {n_features}], got {list(values.shape)}",
            field="inputs",
        )
    return np.ascontiguousarray(values, dtype=np.float32)
