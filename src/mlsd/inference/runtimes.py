"""Model runtimes: ONNX Runtime by default, LightGBM native as the fallback.

A runtime turns a float32 feature matrix (n, k) into the fraud probability of
each row. It is built from artifact bytes already checked by the registry.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mlsd.errors import IntegrityError, ValidationError

ONNX_ARTIFACT = "model.onnx"
LIGHTGBM_ARTIFACT = "model.lgb.txt"
ONNX_INPUT = "input"
ONNX_OUTPUT = "probabilities"


class Runtime(Protocol):
    """Scores a batch of feature rows."""

    name: str
    n_features: int

    def predict(self, values: np.ndarray) -> np.ndarray:
        """Fraud probability (n,) float64 of each row of `values` (n, k) float32."""
        ...


class OnnxRuntime:
    """An ONNX Runtime session, one intra-op thread (the server scales by batching)."""

    name = "onnxruntime"

    def __init__(self, model_bytes: bytes, n_features: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise IntegrityError(f"ONNX model does not load: {exc}") from exc
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = [o.name for o in self._session.get_outputs()]
        if ONNX_INPUT not in inputs or ONNX_OUTPUT not in outputs:
            raise IntegrityError(
                f"ONNX model must have input {ONNX_INPUT!r} and output {ONNX_OUTPUT!r}, "
                f"has {sorted(inputs)} and {outputs}"
            )
        width = inputs[ONNX_INPUT].shape[-1]
        if isinstance(width, int) and width != n_features:
            raise IntegrityError(
                f"ONNX input has {width} columns but the signature names {n_features} features"
            )
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
