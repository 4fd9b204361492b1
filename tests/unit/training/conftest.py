"""Shared fixtures: one small simulated dataset, its feature store, and one training run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlsd.features.store import FeatureStore
from mlsd.settings import Settings
from mlsd.training.config import TrainConfig
from mlsd.training.pipeline import TrainResult, train

GRIDS = {
    "lightgbm": [{"n_estimators": 30, "num_leaves": 7}, {"n_estimators": 40, "num_leaves": 15}],
    "logistic": [{"C": 1.0}],
}


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 customers, 600 terminals, 45 days: about 20,000 transactions."""
    from mlsd.data.config import SimulatorConfig
    from mlsd.data.io import write_dataset
    from mlsd.data.simulator import simulate

    config = SimulatorConfig(n_customers=300, n_terminals=600, n_days=45, seed=3)
    return write_dataset(simulate(config), tmp_path_factory.mktemp("training") / "dataset")


@pytest.fixture(scope="session")
def store_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("training-home"))


@pytest.fixture(scope="session")
def store(dataset_dir: Path, store_settings: Settings) -> Iterator[FeatureStore]:
    """The embedded feature store, handbook views applied and built on `dataset_dir`."""
    feature_store = FeatureStore.open(store_settings)
    feature_store.apply()
    feature_store.build(dataset_dir)
    yield feature_store
    feature_store.close()


@pytest.fixture(scope="session")
def config(dataset_dir: Path) -> TrainConfig:
    return TrainConfig.make(dataset=str(dataset_dir), n_folds=2, grids=GRIDS, seed=5, num_threads=1)


@pytest.fixture(scope="session")
def trained(config: TrainConfig, store: FeatureStore) -> TrainResult:
    return train(config, store)
