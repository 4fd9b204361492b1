"""A small simulated fraud world for experiments: transactions from the simulator, the
handbook's features from the feature store (point in time, as training and serving see
them), and LightGBM models trained on chosen days, exported to ONNX and scored by the
serving runtime, each with the threshold the training's alert-budget policy picks.

Building it takes a few seconds at a few hundred customers: the same steps as
`mlsd simulate`, `mlsd features build` and `mlsd train`, without the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import schema

#: The demo's quick LightGBM parameters (`mlsd.training.demo.QUICK_GRIDS`).
PARAMS: dict[str, Any] = {
    "n_estimators": 120, "learning_rate": 0.08, "max_depth": 3, "num_leaves": 8,
    "min_child_samples": 50, "subsample": 0.8, "colsample_bytree": 0.8,
}  # fmt: skip


@dataclass(frozen=True)
class World:
    """Transactions with their point-in-time features, sorted by transaction id."""

    frame: pd.DataFrame
    features: list[str]
    n_customers: int

    def days(self, first: int, last: int) -> pd.DataFrame:
        """Rows of days first..last (inclusive, day indices since the start)."""
        day = self.frame[schema.TX_TIME_DAYS]
        return self.frame[(day >= first) & (day <= last)]

    def matrix(self, rows: pd.DataFrame) -> np.ndarray:
        """The model inputs of `rows` as served: float32, model order."""
        return np.ascontiguousarray(rows[self.features].to_numpy(dtype=np.float32))


def build_world(
    workdir: Path, n_customers: int, n_terminals: int, n_days: int,
    scenarios: list[dict[str, Any]], seed: int,
) -> World:  # fmt: skip
    """Simulate, write the dataset, build the offline features, join them point in time."""
    from mlsd.data.config import SimulatorConfig
    from mlsd.data.io import write_dataset
    from mlsd.data.simulator import simulate
    from mlsd.features.store import FeatureStore
    from mlsd.settings import Settings
    from mlsd.training.dataset import handbook_features, training_frame

    config = SimulatorConfig.scaled(
        n_customers, n_terminals, n_days=n_days, seed=seed, scenarios=scenarios
    )
    dataset = simulate(config)
    folder = write_dataset(dataset, workdir / "dataset", overwrite=True)
    store = FeatureStore.open(Settings(home=workdir))
    try:
        store.apply()
        store.build(folder)
        features = handbook_features()
        frame = training_frame(store, dataset.transactions, features)
    finally:
        store.close()
    tx = dataset.transactions.set_index(schema.TRANSACTION_ID)
    frame[schema.TX_TIME_DAYS] = tx.loc[
        frame[schema.TRANSACTION_ID], schema.TX_TIME_DAYS
    ].to_numpy()
    return World(frame, features, n_customers)


@dataclass(frozen=True)
class Model:
    """A trained model as served: the ONNX runtime and its decision threshold."""

    name: str
    runtime: Any
    threshold: float

    def scores(self, values: np.ndarray) -> np.ndarray:
        """Fraud probabilities of rows (float32 in model order)."""
        out: np.ndarray = self.runtime.predict(values)
        return out

    def decisions(self, values: np.ndarray) -> np.ndarray:
        """`fraud` where the score reaches the threshold, else `legit`."""
        return np.where(self.scores(values) >= self.threshold, "fraud", "legit")


def train_model(
    world: World, name: str, first: int, last: int, *, seed: int, validation_days: int = 7
) -> Model:
    """LightGBM on days first..last − validation_days, its alert-budget threshold on the
    last `validation_days` (k cards a day, scaled from the handbook's 100 per 5,000)."""
    from mlsd.inference.runtimes import OnnxRuntime
    from mlsd.registry.formats import ONNX_ARTIFACT
    from mlsd.training.gbm import LightGBMModel
    from mlsd.training.threshold import alert_budget

    train = world.days(first, last - validation_days)
    valid = world.days(last - validation_days + 1, last)
    model = LightGBMModel(PARAMS, seed=seed, num_threads=1)
    model.fit(world.matrix(train), train[schema.TX_FRAUD].to_numpy())
    runtime = OnnxRuntime(model.artifacts(world.features)[ONNX_ARTIFACT], len(world.features))
    k = max(1, round(100 * world.n_customers / 5000))
    choice = alert_budget(valid, runtime.predict(world.matrix(valid)), k=k)
    return Model(name, runtime, choice.value)
