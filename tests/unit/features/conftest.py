"""Fixtures of the feature store tests: a small dataset with ties, and stores per backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from mlsd.features.online import OnlineStore
from mlsd.features.store import FeatureStore, open_online
from mlsd.features.testing import synthetic_transactions, write_transactions
from mlsd.settings import Settings

BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(scope="session")
def transactions() -> pd.DataFrame:
    """About 4,000 transactions over 40 days, with equal timestamps per customer."""
    return synthetic_transactions(n_customers=50, n_terminals=80, days=40, seed=7)


@pytest.fixture(scope="session")
def dataset(transactions: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The transactions written as one Parquet file per day."""
    return write_transactions(transactions, tmp_path_factory.mktemp("dataset"))


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, home: Path) -> Settings:
    """Settings with the online store on each backend (a fresh key prefix on Redis)."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return Settings(
            home=home, online_store=url, redis_prefix=request.getfixturevalue("redis_prefix")
        )
    return Settings(home=home)


@pytest.fixture
def store(settings: Settings) -> Iterator[FeatureStore]:
    """An applied feature store (no tables built yet) on each online backend."""
    fs = FeatureStore.open(settings)
    fs.apply()
    yield fs
    fs.close()


@pytest.fixture
def built(store: FeatureStore, dataset: Path) -> FeatureStore:
    """The store with the offline tables built from `dataset`."""
    store.build(dataset)
    return store


@pytest.fixture
def online(settings: Settings) -> Iterator[OnlineStore]:
    """A bare online store on each backend, opened from settings like the service opens it."""
    backend = open_online(settings)
    yield backend
    backend.close()
