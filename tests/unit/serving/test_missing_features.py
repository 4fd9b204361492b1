"""Missing or expired stored features reach the model as training saw them, never as NaN.

A logistic model (no native NaN handling) turns a NaN input into a NaN score, which is
not even valid JSON; LightGBM would hide the bug by routing NaN down a default branch.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from mlsd.features import HANDBOOK_FEATURES, MISSING_VALUE
from mlsd.features.store import FeatureStore
from mlsd.registry import Lineage, Registry, Signature
from mlsd.serving.app import create_app
from mlsd.serving.testing import sample_transaction
from mlsd.settings import Settings
from mlsd.training.logistic import LogisticModel

from .conftest import make_service

FEATURES = list(HANDBOOK_FEATURES)


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def logistic(registry: Registry, store: FeatureStore) -> LogisticModel:
    rng = np.random.default_rng(3)
    X = rng.gamma(2.0, 2.0, size=(400, len(FEATURES))).astype(np.float32)
    y = (X[:, 0] + X[:, 10] > 8).astype(np.int32)
    model = LogisticModel({"C": 1.0}, seed=0)
    model.fit(X, y)
    mv = registry.register(
        "fraud",
        model.artifacts(FEATURES),
        flavor="logistic",
        signature=Signature(FEATURES, ["float32"] * len(FEATURES)),
        lineage=Lineage(feature_views=store.view_versions()),
        params={},
        metrics={"threshold": 0.5},
    )
    registry.set_alias("fraud", "champion", mv.version, reason="test", actor="test")
    return model


@pytest.mark.parametrize("customer_id", [1, 999_999], ids=["expired-terminal", "all-missing"])
def test_missing_values_are_filled_like_training(
    settings: Settings,
    registry: Registry,
    store: FeatureStore,
    logistic: LogisticModel,
    make_client: Any,
    customer_id: int,
) -> None:
    service = make_service(settings, registry, store, cache=False)
    client = make_client(create_app(settings, service=service))
    body = sample_transaction(customer_id=customer_id)
    response = client.post("/v1/score", json=body)
    assert response.status_code == 200, response.text
    result = _strict_json(response.text)["results"][0]
    assert math.isfinite(result["score"])
    statuses = result["features"]
    assert "expired" in statuses.values() or "missing" in statuses.values()
    row = store.online_vectors([_request(body)], FEATURES, fill=MISSING_VALUE).values
    expected = float(logistic.predict(row)[0])
    assert result["score"] == pytest.approx(expected, abs=1e-5)


def _request(body: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    return {
        "CUSTOMER_ID": body["customer_id"],
        "TERMINAL_ID": body["terminal_id"],
        "TX_AMOUNT": body["amount"],
        "TX_DATETIME": pd.Timestamp(body["timestamp"]),
    }
