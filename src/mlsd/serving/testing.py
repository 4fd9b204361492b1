"""Tiny real models and valid requests, for serving tests, benchmarks and the demo.

A few-tree LightGBM model trained on random data with the handbook's 15
features, exported to LightGBM text and ONNX like a real training run, so the
whole serving path runs without a dataset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from mlsd.features.handbook import HANDBOOK_FEATURES

if TYPE_CHECKING:
    from mlsd.features.store import FeatureStore
    from mlsd.registry import ModelVersion, Registry

FEATURES: list[str] = list(HANDBOOK_FEATURES)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def tiny_model_artifacts(seed: int, n_trees: int = 15) -> dict[str, bytes]:
    """`model.lgb.txt` and `model.onnx` of a small real LightGBM fraud model."""
    from mlsd.training.gbm import LightGBMModel

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, len(FEATURES))).astype(np.float32)
    X[:, 0] = rng.gamma(2.0, 40.0, size=600)  # an amount-like column
    y = ((X[:, 0] > 120) ^ (X[:, 4] > 1.0)).astype(np.int32)
    model = LightGBMModel({"n_estimators": n_trees, "num_leaves": 7}, seed=seed, num_threads=1)
    model.fit(X, y)
    return model.artifacts(FEATURES)


def register_tiny_model(
    registry: Registry,
    files: dict[str, bytes],
    views: dict[str, str],
    *,
    name: str = "fraud",
    threshold: float = 0.5,
) -> ModelVersion:
    """Register one version with the handbook signature, trained on `views`, deciding at
    `threshold`."""
    from mlsd.registry import DecisionThreshold, Lineage, Signature

    return registry.register(
        name,
        files,
        flavor="lightgbm",
        signature=Signature(FEATURES, ["float32"] * len(FEATURES)),
        lineage=Lineage(feature_views=views),
        params={},
        metrics={},
        threshold=DecisionThreshold(value=threshold, policy="manual"),
    )


def sample_transaction(**overrides: Any) -> dict[str, Any]:
    """A valid `POST /v1/score` body."""
    body: dict[str, Any] = {
        "transaction_id": 1001,
        "customer_id": 1,
        "terminal_id": 7,
        "amount": 42.5,
        "timestamp": NOW.isoformat().replace("+00:00", "Z"),
    }
    body.update(overrides)
    return body


def seed_feature_store(store: FeatureStore, now: datetime = NOW) -> dict[str, str]:
    """Apply the handbook views and push fresh features of customers 1, 2 and stale ones of
    terminal 7. Returns the served view versions."""
    from datetime import timedelta

    import pandas as pd

    versions = store.apply()
    customers = pd.DataFrame(
        {
            "CUSTOMER_ID": [1, 2],
            "event_timestamp": pd.to_datetime([now - timedelta(hours=1)] * 2, utc=True),
            **{f: [3.0, 1.0] for f in FEATURES if f.startswith("CUSTOMER_ID_")},
        }
    )
    store.push("customer_spending", customers)
    terminals = pd.DataFrame(
        {
            "TERMINAL_ID": [7],
            "event_timestamp": pd.to_datetime([now - timedelta(days=60)], utc=True),
            **{f: [2.0] for f in FEATURES if f.startswith("TERMINAL_ID_")},
        }
    )
    store.push("terminal_risk", terminals)
    return versions
