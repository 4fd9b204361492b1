"""A data folder ready to serve: handbook feature views with online rows, a registered model."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlsd.registry.formats import LIGHTGBM_ARTIFACT, ONNX_ARTIFACT
from mlsd.registry.profile import PROFILE_ARTIFACT, build_profile, profile_bytes
from mlsd.serving.testing import FEATURES, NOW, register_tiny_model, tiny_model_artifacts
from mlsd.settings import Settings

N_CUSTOMERS = 5_000
N_TERMINALS = 1_000
N_TREES = 100


def prepare_home(home: Path, seed: int = 7) -> Path:
    """Fill `home` with features for N_CUSTOMERS / N_TERMINALS and `fraud@champion`.

    Returns the path of the model's ONNX file (also used by the naive baseline); its
    LightGBM text lies beside it as `bench-model.lgb.txt`.
    """
    from mlsd.features.store import FeatureStore
    from mlsd.registry import Registry

    settings = Settings(home=home)
    rng = np.random.default_rng(seed)
    store = FeatureStore.open(settings)
    try:
        store.apply()
        customer_cols = [f for f in FEATURES if f.startswith("CUSTOMER_ID_")]
        customers = pd.DataFrame(
            {
                "CUSTOMER_ID": np.arange(N_CUSTOMERS),
                "event_timestamp": pd.Timestamp(NOW - timedelta(hours=1)),
                **{c: rng.gamma(2.0, 20.0, N_CUSTOMERS) for c in customer_cols},
            }
        )
        store.push("customer_spending", customers)
        terminal_cols = [f for f in FEATURES if f.startswith("TERMINAL_ID_")]
        terminals = pd.DataFrame(
            {
                "TERMINAL_ID": np.arange(N_TERMINALS),
                "event_timestamp": pd.Timestamp(NOW - timedelta(days=1)),
                **{c: rng.random(N_TERMINALS) for c in terminal_cols},
            }
        )
        store.push("terminal_risk", terminals)
        views = store.view_versions()
    finally:
        store.close()
    files = tiny_model_artifacts(seed, n_trees=N_TREES)
    files[PROFILE_ARTIFACT] = _profile(seed)  # so `mlsd serve`'s live drift has work to do
    registry = Registry.open(settings)
    try:
        version = register_tiny_model(registry, files, views)
        registry.set_alias("fraud", "champion", version.version, reason="bench", actor="bench")
        register_tiny_model(registry, files, views)  # the shadow of `mlsd_shadow` (same work)
    finally:
        registry.close()
    onnx_path = home / "bench-model.onnx"
    onnx_path.write_bytes(files[ONNX_ARTIFACT])
    (home / "bench-model.lgb.txt").write_bytes(files[LIGHTGBM_ARTIFACT])
    return onnx_path


def _profile(seed: int) -> bytes:
    """A reference profile of served-like rows, as training registers one."""
    rows = transaction_rows(5_000, seed)
    scores = np.random.default_rng(seed).beta(0.5, 8.0, size=5_000)
    profile = build_profile(rows, list(FEATURES), scores=scores, source="benchmark fixture")
    return profile_bytes(profile)


def transaction_rows(n: int, seed: int = 1) -> np.ndarray:
    """(n, 15) float32 model inputs with realistic-ish ranges, for model-only runs."""
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, 20.0, size=(n, len(FEATURES))).astype(np.float32)
    values[:, 1:3] = rng.integers(0, 2, size=(n, 2))
    return values
