from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from mlsd.errors import IntegrityError, ValidationError
from mlsd.training.models import FLAVORS, load_scorer, make_model, onnx_scorer

NAMES = [f"f{i}" for i in range(15)]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 15)) * rng.uniform(0.1, 100, 15)
    logits = X[:, 0] / X[:, 0].std() + X[:, 1] * X[:, 2] / (X[:, 1].std() * X[:, 2].std())
    y = (logits + rng.normal(size=len(X)) > 2.0).astype(np.int8)
    return X, y


@pytest.mark.parametrize("flavor", FLAVORS)
def test_onnx_and_native_scores_match_the_model(
    flavor: str, data: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = data
    params = {"n_estimators": 50} if flavor == "lightgbm" else {}
    model = make_model(flavor, params, seed=1, num_threads=1)
    model.fit(X, y)
    scores = model.predict(X)
    assert scores.min() >= 0.0
    assert scores.max() <= 1.0
    artifacts = model.artifacts(NAMES)
    graph = onnx.load_from_string(artifacts["model.onnx"]).graph
    assert [i.name for i in graph.input] == ["input"]
    assert "probabilities" in [o.name for o in graph.output]
    np.testing.assert_allclose(onnx_scorer(artifacts["model.onnx"])(X), scores, atol=1e-5)
    np.testing.assert_allclose(load_scorer(flavor, artifacts)(X), scores, atol=1e-6)


def test_lightgbm_is_deterministic(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    params = {"n_estimators": 30, "subsample": 0.8, "colsample_bytree": 0.8}
    first, second = (make_model("lightgbm", params, seed=7) for _ in range(2))
    first.fit(X, y)
    second.fit(X, y)
    assert np.array_equal(first.predict(X), second.predict(X))
    assert first.artifacts(NAMES)["model.lgb.txt"] == second.artifacts(NAMES)["model.lgb.txt"]


def test_logistic_coefficients_are_plain_json(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    model = make_model("logistic", {"C": 0.5})
    model.fit(X, y)
    stored = json.loads(model.artifacts(NAMES)["coefficients.json"])
    assert stored["feature_names"] == NAMES
    assert len(stored["coef"]) == 15


def test_bad_models_are_refused() -> None:
    with pytest.raises(ValidationError) as info:
        make_model("xgboost", {})
    assert info.value.field == "model"
    with pytest.raises(ValidationError) as info:
        make_model("lightgbm", {"bogus": 1})
    assert info.value.field == "params"
    with pytest.raises(ValidationError):
        make_model("logistic", {}).predict(np.zeros((2, 15)))
    with pytest.raises(IntegrityError):
        load_scorer("lightgbm", {"model.onnx": b""})
    with pytest.raises(IntegrityError):
        load_scorer("logistic", {})
