"""Versions with and without a reference profile, and a prediction log holding their rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from mlsd.predlog import PredictionRecord
from mlsd.registry import ModelVersion, Registry
from mlsd.registry.formats import LIGHTGBM_ARTIFACT
from mlsd.registry.profile import PROFILE_ARTIFACT, build_profile, profile_bytes
from mlsd.registry.testing import (
    FEATURES,
    register_sample,
    sample_lineage,
    sample_rows,
    sample_signature,
    tiny_lightgbm,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def register_profiled(registry: Registry, seed: int = 0) -> ModelVersion:
    """A tiny LightGBM version whose profile is of `sample_rows(5000, seed)`."""
    rows = sample_rows(5000, seed)
    profile = build_profile(rows, list(FEATURES), scores=rows[:, 0], source="sample rows")
    return registry.register(
        "fraud",
        {LIGHTGBM_ARTIFACT: tiny_lightgbm(seed), PROFILE_ARTIFACT: profile_bytes(profile)},
        flavor="lightgbm",
        signature=sample_signature(),
        lineage=sample_lineage(),
        params={},
        metrics={"auc_roc": 0.9},
    )


def register_unprofiled(registry: Registry) -> ModelVersion:
    """A version as registered before profiles existed."""
    return register_sample(registry)


def records(
    version: int, n: int, *, shift: float = 0.0, seed: int = 1, start: datetime = T0
) -> list[PredictionRecord]:
    """`n` logged predictions of fraud/`version`, one a second, f1 shifted by `shift`."""
    rows = sample_rows(n, seed).astype(np.float64)
    rows[:, 1] += shift
    return [
        PredictionRecord(
            request_id=f"r{version}-{i}",
            ts=start + timedelta(seconds=i),
            model="fraud",
            version=str(version),
            features=list(row),
            feature_names=list(FEATURES),
            score=float(row[0] % 1.0),
            decision="legit",
            threshold=0.5,
            latency_ms=1.0,
            variant="champion",
        )
        for i, row in enumerate(rows)
    ]
