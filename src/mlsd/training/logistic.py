"""Logistic regression, the handbook's baseline: standardised inputs, ONNX and JSON export."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlsd.errors import IntegrityError, ValidationError
from mlsd.registry.formats import COEFFICIENTS_ARTIFACT, ONNX_ARTIFACT, ONNX_INPUT, ONNX_OPSET
from mlsd.training.models import FloatArray, Scorer, as_matrix

DEFAULTS: dict[str, Any] = {"C": 1.0, "max_iter": 1000}
ALLOWED = frozenset(DEFAULTS) | {"class_weight"}


class LogisticModel:
    """StandardScaler + LogisticRegression, as in the handbook's baseline (section 3.4)."""

    flavor = "logistic"

    def __init__(self, params: Mapping[str, Any], *, seed: int = 0) -> None:
        unknown = sorted(set(params) - ALLOWED)
        if unknown:
            raise ValidationError(f"unknown logistic parameters: {unknown}", field="params")
        self.params: dict[str, Any] = {**DEFAULTS, **params}
        self.seed = seed
        self._pipeline: Any = None

    def fit(self, X: NDArray[Any], y: NDArray[Any]) -> None:
        """Standardise `X` and fit the regression."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        pipeline = Pipeline(
            [
                ("scaler", StandardScaler()),
                ("model", LogisticRegression(**self.params, random_state=self.seed)),
            ]
        )
        pipeline.fit(as_matrix(X), np.asarray(y, dtype=np.int32))
        self._pipeline = pipeline

    def predict(self, X: NDArray[Any]) -> FloatArray:
        """Fraud probability of each row."""
        if self._pipeline is None:
            raise ValidationError("the model is not trained yet", field="model")
        return np.asarray(self._pipeline.predict_proba(as_matrix(X))[:, 1], dtype=np.float64)

    def coefficients(self, feature_names: list[str]) -> dict[str, Any]:
        """Scaler statistics and regression weights, enough to score without sklearn."""
        scaler = self._pipeline.named_steps["scaler"]
        model = self._pipeline.named_steps["model"]
        return {
            "feature_names": list(feature_names),
            "mean": [float(v) for v in scaler.mean_],
            "scale": [float(v) for v in scaler.scale_],
            "coef": [float(v) for v in model.coef_[0]],
            "intercept": float(model.intercept_[0]),
        }

    def artifacts(self, feature_names: list[str]) -> dict[str, bytes]:
        """`model.onnx` (no ZipMap) and `coefficients.json`."""
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        if self._pipeline is None:
            raise ValidationError("the model is not trained yet", field="model")
        model = self._pipeline.named_steps["model"]
        onnx_model = convert_sklearn(
            self._pipeline,
            initial_types=[(ONNX_INPUT, FloatTensorType([None, len(feature_names)]))],
            options={id(model): {"zipmap": False}},
            target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3},
        )
        text = json.dumps(self.coefficients(feature_names), indent=2, sort_keys=True)
        return {COEFFICIENTS_ARTIFACT: text.encode(), ONNX_ARTIFACT: onnx_model.SerializeToString()}


def load_coefficients_scorer(artifacts: Mapping[str, bytes]) -> Scorer:
    """Score from `coefficients.json` with numpy alone."""
    if COEFFICIENTS_ARTIFACT not in artifacts:
        raise IntegrityError(
            f"the model has no {COEFFICIENTS_ARTIFACT}", field=COEFFICIENTS_ARTIFACT
        )
    data = json.loads(artifacts[COEFFICIENTS_ARTIFACT])
    mean = np.asarray(data["mean"], dtype=np.float64)
    scale = np.asarray(data["scale"], dtype=np.float64)
    coef = np.asarray(data["coef"], dtype=np.float64)
    intercept = float(data["intercept"])

    def score(X: NDArray[Any]) -> FloatArray:
        z = ((as_matrix(X).astype(np.float64) - mean) / scale) @ coef + intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    return score
