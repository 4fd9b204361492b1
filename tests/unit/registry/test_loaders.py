from __future__ import annotations

import logging

import numpy as np
import pytest

from mlsd.errors import IntegrityError
from mlsd.registry import Registry
from mlsd.registry.environment import current_environment
from mlsd.registry.loaders import load_lightgbm, load_onnx
from mlsd.registry.testing import register_sample, sample_lineage, sample_rows, sample_signature


def test_lightgbm_loads_and_predicts(registry: Registry) -> None:
    register_sample(registry)
    registry.set_alias("fraud", "champion", 1, reason="r", actor="a")
    loaded = load_lightgbm(registry, "models:/fraud@champion")
    scores = loaded.model.predict(sample_rows(16))
    assert scores.shape == (16,)
    assert np.all((scores >= 0) & (scores <= 1))
    assert loaded.environment_diff == {}
    assert loaded.version.version == 1


def test_onnx_loads_from_verified_bytes(registry: Registry) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x = sample_rows(200)
    model = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
    onnx_bytes = to_onnx(model, x[:1], options={"zipmap": False}).SerializeToString()
    mv = registry.register(
        "logit",
        {"model.onnx": onnx_bytes},
        flavor="logistic",
        signature=sample_signature(),
        lineage=sample_lineage(),
        params={},
        metrics={"auc_roc": 1.0},
    )
    session = load_onnx(registry, mv).model
    probabilities = session.run(None, {session.get_inputs()[0].name: x[:4]})[1]
    assert probabilities.shape == (4, 2)


def test_garbage_model_text_is_an_integrity_error(registry: Registry) -> None:
    mv = registry.register(
        "broken",
        {"model.lgb.txt": b"not a model"},
        flavor="lightgbm",
        signature=sample_signature(),
        lineage=sample_lineage(),
        params={},
        metrics={},
    )
    with pytest.raises(IntegrityError):
        load_lightgbm(registry, mv)


def test_a_different_environment_is_reported(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    mv = register_sample(registry)
    env = current_environment()
    old = env.model_copy(update={"packages": {**env.packages, "lightgbm": "0.1"}})
    with caplog.at_level(logging.WARNING, logger="mlsd.registry"):
        loaded = load_lightgbm(registry, mv.model_copy(update={"environment": old}))
    assert loaded.environment_diff["packages"]["changed"]["lightgbm"][0] == "0.1"
    assert "different environment" in caplog.text
