"""Fixtures of the feature store tests: a small dataset with ties, and stores per backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from mlsd.features.online import OnlineStore, SqliteOnlineStore
from mlsd.features.store import FeatureStore
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
    """Settings with the online store on each backend."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return Settings(home=home, online_store=url)
    return Settings(home=home)


@pytest.fixture
def store(request: pytest.FixtureRequest, settings: Settings) -> Iterator[FeatureStore]:
    """An applied feature store (no tables built yet) on each online backend."""
    prefix = request.getfixturevalue("redis_prefix") if settings.online_store else "mlsd:"
    fs = FeatureStore.open(settings, online_prefix=prefix)
    fs.apply()
    yield fs
    fs.close()


@pytest.fixture
def built(store: FeatureStore, dataset: Path) -> FeatureStore:
    """The store with the offline tables built from `dataset`."""
    store.build(dataset)
    return store


@pytest.fixture(params=BACKENDS)
def online(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    """A bare online store on each backend."""
    if request.param == "redis":
        from mlsd.features.online_redis import RedisOnlineStore

        url = request.getfixturevalue("redis_url")
        backend: OnlineStore = RedisOnlineStore(url, prefix=request.getfixturevalue("redis_prefix"))
    else:
        backend = SqliteOnlineStore(tmp_path / "online.sqlite")
    yield backend
    backend.close()
