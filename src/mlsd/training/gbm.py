"""LightGBM, the main fraud model: deterministic training, text and ONNX export."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlsd.errors import IntegrityError, ValidationError
from mlsd.registry.formats import LIGHTGBM_ARTIFACT, ONNX_ARTIFACT, ONNX_INPUT, ONNX_OPSET
from mlsd.training.models import FloatArray, Scorer, as_matrix

DEFAULTS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 20,
    "subsample": 1.0,
    "colsample_bytree": 1.0,
    "reg_lambda": 0.0,
}
ALLOWED = frozenset(DEFAULTS) | {"max_depth", "min_split_gain", "scale_pos_weight", "reg_alpha"}


class LightGBMModel:
    """A LightGBM binary classifier, bit-for-bit reproducible for a seed and thread count."""

    flavor = "lightgbm"

    def __init__(self, params: Mapping[str, Any], *, seed: int = 0, num_threads: int = 1) -> None:
        unknown = sorted(set(params) - ALLOWED)
        if unknown:
            raise ValidationError(f"unknown LightGBM parameters: {unknown}", field="params")
        self.params: dict[str, Any] = {**DEFAULTS, **params}
        self.seed = seed
        self.num_threads = num_threads
        self._model: Any = None

    def _estimator(self) -> Any:
        import lightgbm as lgb

        return lgb.LGBMClassifier(
            **self.params,
            subsample_freq=1 if self.params["subsample"] < 1.0 else 0,
            random_state=self.seed,
            n_jobs=self.num_threads,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )

    def fit(self, X: NDArray[Any], y: NDArray[Any]) -> None:
        """Train on `X` (cast to float32, as served) and labels `y`."""
        model = self._estimator()
        model.fit(as_matrix(X), np.asarray(y, dtype=np.int32))
        self._model = model

    def predict(self, X: NDArray[Any]) -> FloatArray:
        """Fraud probability of each row."""
        if self._model is None:
            raise ValidationError("the model is not trained yet", field="model")
        scores = self._model.predict_proba(as_matrix(X))[:, 1]
        return np.asarray(scores, dtype=np.float64)

    def artifacts(self, feature_names: list[str]) -> dict[str, bytes]:
        """`model.lgb.txt` (LightGBM's own text) and `model.onnx` (no ZipMap)."""
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        if self._model is None:
            raise ValidationError("the model is not trained yet", field="model")
        text = self._model.booster_.model_to_string()
        onnx_model = convert_lightgbm(
            self._model,
            initial_types=[(ONNX_INPUT, FloatTensorType([None, len(feature_names)]))],
            zipmap=False,
            target_opset=ONNX_OPSET,
        )
        return {LIGHTGBM_ARTIFACT: text.encode(), ONNX_ARTIFACT: onnx_model.SerializeToString()}


def load_booster_scorer(artifacts: Mapping[str, bytes]) -> Scorer:
    """Score with a LightGBM Booster rebuilt from `model.lgb.txt`."""
    import lightgbm as lgb

    if LIGHTGBM_ARTIFACT not in artifacts:
        raise IntegrityError(
            f"the model has no {LIGHTGBM_ARTIFACT} artifact", field=LIGHTGBM_ARTIFACT
        )
    booster = lgb.Booster(model_str=artifacts[LIGHTGBM_ARTIFACT].decode())

    def score(X: NDArray[Any]) -> FloatArray:
        return np.asarray(booster.predict(as_matrix(X)), dtype=np.float64)

    return score
