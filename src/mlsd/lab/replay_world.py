"""A small simulated world with a replay, for lab experiments: transactions, the real
feature store built over them, a model trained on the handbook's inputs, and a replay that
keeps the online store point-in-time correct (each transaction's own rows are written just
before it is scored). `mlsd.lab.world` is the lighter world without stores (features from a
point-in-time join, models scored directly).

Shared by the experiments that need the whole serving path on real data (`caching`,
`embeddings`), so each of them measures and none re-implements the stores.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.io import write_dataset
from mlsd.data.simulator import simulate
from mlsd.features.definitions import FeatureView
from mlsd.features.handbook import HANDBOOK_FEATURES, HANDBOOK_VIEWS
from mlsd.features.online import OnlineStore, WriteBatch
from mlsd.features.pipeline import CREATED_TS, EVENT_TS, connect
from mlsd.features.store import FeatureStore
from mlsd.inference.runtimes import OnnxRuntime
from mlsd.inference.spec import LoadedModel, ServingSpec
from mlsd.registry.formats import ONNX_ARTIFACT
from mlsd.settings import Settings
from mlsd.training.dataset import matrix, training_frame
from mlsd.training.gbm import LightGBMModel


@dataclass
class World:
    """A simulated dataset, its feature store (offline tables built) and its transactions."""

    config: SimulatorConfig
    dataset_dir: Path
    store: FeatureStore
    transactions: pd.DataFrame

    def day(self, index: int) -> date:
        """The calendar date of simulated day `index`."""
        return self.config.start_date + pd.Timedelta(days=index).to_pytimedelta()

    def frame(self, first_day: int, days: int, features: Sequence[str] = HANDBOOK_FEATURES) -> Any:
        """Transactions of days [first_day, first_day + days) with their point-in-time features."""
        start = pd.Timestamp(self.day(first_day), tz="UTC")
        end = start + pd.Timedelta(days=days)
        tx = self.transactions
        rows = tx[(tx[schema.TX_DATETIME] >= start) & (tx[schema.TX_DATETIME] < end)]
        return training_frame(self.store, rows, list(features))

    def close(self) -> None:
        """Close the feature store."""
        self.store.close()


def make_world(
    workdir: Path, config: SimulatorConfig, views: Sequence[FeatureView] = HANDBOOK_VIEWS
) -> World:
    """Simulate `config`, write it, apply `views` (the handbook's) and build their tables."""
    dataset = simulate(config)
    folder = write_dataset(dataset, workdir / "dataset", overwrite=True)
    store = FeatureStore.open(Settings(home=workdir / "home"))
    store.apply(views)
    store.build(folder)
    return World(config, folder, store, dataset.transactions)


def train_model(
    frame: pd.DataFrame,
    name: str,
    version: int,
    *,
    seed: int,
    features: Sequence[str] = HANDBOOK_FEATURES,
    n_estimators: int = 60,
    top_share: float = 0.01,
) -> LoadedModel:
    """A LightGBM model on `frame`, exported to ONNX and loaded as serving loads it.

    Its threshold flags the top `top_share` of the training scores (an alert budget).
    """
    names = list(features)
    model = LightGBMModel({"n_estimators": n_estimators, "num_leaves": 15}, seed=seed)
    X = matrix(frame, names)
    model.fit(X, frame[schema.TX_FRAUD].to_numpy())
    runtime = OnnxRuntime(model.artifacts(names)[ONNX_ARTIFACT], len(names))
    threshold = float(np.quantile(runtime.predict(X), 1.0 - top_share))
    spec = ServingSpec("lightgbm", tuple(names), threshold=threshold, threshold_policy="lab")
    return LoadedModel(name, version, spec, runtime)


class Replayer:
    """Writes each transaction's own feature rows (from the offline tables) into the online
    store just before it is scored, as the demo's feed does: no request sees its future.

    `online` is the store written (default: the feature store's own); it is materialized up
    to `start` first.
    """

    def __init__(
        self,
        store: FeatureStore,
        start: datetime,
        end: datetime,
        online: OnlineStore | None = None,
    ) -> None:
        self.store = store
        self.online = online or store.online
        #: per view: (name, version, join key, {(key, event µs): (created µs, values (1, f))})
        self._rows: list[tuple[str, str, str, dict[tuple[int, int], _Stored]]] = []
        con = connect()
        try:
            for req in store.batch_requests():
                key = req.view.entity.join_key if req.view.entity else ""
                cols = ", ".join(f'"{f}"' for f in req.view.features)
                frame = con.execute(
                    f"SELECT {key} AS k, epoch_us({EVENT_TS}) AS e, epoch_us({CREATED_TS}) AS c, "
                    f"{cols} FROM ({store.offline.table_sql(req.view, req.version)}) "
                    f"WHERE {EVENT_TS} >= make_timestamptz({_us(start)}) "
                    f"AND {EVENT_TS} < make_timestamptz({_us(end)}) ORDER BY k, e, c"
                ).df()
                values = frame[list(req.view.features)].to_numpy(dtype=np.float64)
                rows: dict[tuple[int, int], _Stored] = {}
                for i, (k, e, c) in enumerate(
                    zip(frame["k"].tolist(), frame["e"].tolist(), frame["c"].tolist(), strict=True)
                ):  # ordered by created time: the latest row of a (key, event) is kept
                    rows[(int(k), int(e))] = (int(c), np.ascontiguousarray(values[i : i + 1]))
                self._rows.append((req.view.name, req.version, key, rows))
        finally:
            con.close()
        self.store.materialize(end=start, online=self.online)

    def before(
        self, customer: int, terminal: int, when_us: int, views: Collection[str] | None = None
    ) -> None:
        """Write the rows of the transaction of `customer` at `terminal` at `when_us` (of
        the views named in `views`; default: every batch view)."""
        batches = []
        keys = {schema.CUSTOMER_ID: customer, schema.TERMINAL_ID: terminal}
        for view, version, join_key, rows in self._rows:
            if views is not None and view not in views:
                continue
            key = keys[join_key]
            found = rows.get((key, when_us))
            if found is None:
                continue
            batches.append(
                WriteBatch(
                    view, version, np.array([key], np.int64), np.array([when_us], np.int64),
                    np.array([found[0]], np.int64), found[1],
                )
            )  # fmt: skip
        if batches:
            self.online.write(batches)


#: A stored row of the replay: its created time (µs) and values (1, f).
_Stored = tuple[int, np.ndarray]


def _us(when: datetime) -> int:
    return int(pd.Timestamp(when).tz_convert("UTC").value // 1000)


def day_start(day: date) -> datetime:
    """Midnight UTC of `day`."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
