"""Small real models and ready-made versions for tests, benchmarks and the demo.

The model is a genuine LightGBM booster trained on random data (a few
milliseconds), stored as model text, so every code path is exercised for real.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np

from mlsd.registry.formats import LIGHTGBM_ARTIFACT
from mlsd.registry.models import DecisionThreshold, Lineage, ModelVersion
from mlsd.registry.registry import Registry
from mlsd.registry.signature import Signature

FEATURES = tuple(f"f{i}" for i in range(8))


def sample_signature() -> Signature:
    """Eight float32 features `f0..f7`."""
    return Signature(feature_names=list(FEATURES), dtypes=["float32"] * len(FEATURES))


def sample_rows(n: int = 64, seed: int = 0) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Random float32 rows matching `sample_signature()`."""
    return np.random.default_rng(seed).random((n, len(FEATURES)), dtype=np.float32)


@lru_cache(maxsize=8)
def tiny_lightgbm(seed: int = 0, trees: int = 20) -> bytes:
    """The model text of a LightGBM binary classifier trained on random rows."""
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    x = sample_rows(2000, seed)
    y = (x[:, 0] + 0.3 * rng.random(2000) > 0.9).astype(np.int32)
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "seed": seed}
    params["num_threads"] = 1
    booster = lgb.train(params, lgb.Dataset(x, y, feature_name=list(FEATURES)), trees)
    return str(booster.model_to_string()).encode("utf-8")


def sample_lineage(parent: int | None = None) -> Lineage:
    """A plausible lineage (fixed hashes, one feature view, a UTC training period)."""
    return Lineage(
        training_set_hash="0" * 64,
        feature_views={"transaction_features": "1"},
        code_commit="test",
        dataset="synthetic",
        train_period=(datetime(2018, 7, 25, tzinfo=UTC), datetime(2018, 7, 31, tzinfo=UTC)),
        test_period=(datetime(2018, 8, 8, tzinfo=UTC), datetime(2018, 8, 14, tzinfo=UTC)),
        parent_version=parent,
        config={"trees": 20},
    )


def register_sample(
    registry: Registry,
    name: str = "fraud",
    *,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    seed: int = 0,
    threshold: DecisionThreshold | None = None,
) -> ModelVersion:
    """Register a tiny real LightGBM model under `name` (deciding at `threshold`, if given)."""
    return registry.register(
        name,
        {LIGHTGBM_ARTIFACT: tiny_lightgbm(seed)},
        flavor="lightgbm",
        signature=sample_signature(),
        lineage=sample_lineage(),
        params={"num_leaves": 15, "trees": 20, "seed": seed},
        metrics=metrics or {"auc_roc": 0.9, "average_precision": 0.6, "card_precision_at_100": 0.3},
        tags=tags,
        description="tiny test model",
        threshold=threshold,
    )
