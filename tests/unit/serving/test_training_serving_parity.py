"""End to end, no training-serving skew: what `/v1/score` fed the model equals `get_training_set`.

A small simulated dataset is built into the feature store; held-out transactions of its last
days are scored one by one through `POST /v1/score`, the online store brought up to each
transaction's time first (as the stream processor does: a customer's windows include the
transaction being scored, so a store materialized to an earlier horizon would legitimately
serve older values). The model inputs the server used, as the prediction log recorded them,
must equal the point-in-time training set of the same rows: every feature, every row, at
float32 (the model's input type), with the online store on SQLite and on Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.features.handbook import REQUEST_FEATURES
from mlsd.features.store import FeatureStore
from mlsd.predlog.parquet import ParquetPredictionLog
from mlsd.registry import Registry
from mlsd.serving.app import create_app
from mlsd.serving.service import Service
from mlsd.serving.testing import FEATURES, register_tiny_model
from mlsd.settings import Settings

from .conftest import make_service

HELD_OUT_DAYS = 7
ROWS = 40


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A 45-day simulated dataset on disk, and its transactions."""
    from mlsd.data.config import SimulatorConfig
    from mlsd.data.io import write_dataset
    from mlsd.data.simulator import simulate

    data = simulate(SimulatorConfig(n_customers=60, n_terminals=100, n_days=45, seed=3))
    folder = write_dataset(data, tmp_path_factory.mktemp("simulated") / "ds")
    return folder, data.transactions


@pytest.fixture
def settings(online_settings: Settings) -> Settings:
    """This module's tests run with the online store on each backend."""
    return online_settings


@pytest.fixture
def built(
    request: pytest.FixtureRequest, settings: Settings, simulated: tuple[Path, pd.DataFrame]
) -> Iterator[FeatureStore]:
    """The feature store with the handbook views built from the dataset (online store empty)."""
    store = FeatureStore.open(settings)
    store.apply()
    store.build(simulated[0])
    yield store
    store.close()


@pytest.fixture
def logged_service(
    settings: Settings,
    built: FeatureStore,
    artifacts: dict[int, dict[str, bytes]],
    tmp_path: Path,
) -> Iterator[tuple[Service, ParquetPredictionLog]]:
    """A served model trained on the built views, every prediction logged."""
    registry = Registry.open(settings)
    register_tiny_model(registry, artifacts[1], built.view_versions())
    registry.set_alias("fraud", "champion", 1, reason="test", actor="test")
    plog = ParquetPredictionLog(tmp_path / "predictions", flush_seconds=60, compact_every_s=None)
    service = make_service(settings, registry, built, prediction_log=plog)
    yield service, plog
    service.close()
    registry.close()


def _held_out(transactions: pd.DataFrame) -> pd.DataFrame:
    """ROWS transactions of the last days, in time order, on both sides of every boundary."""
    last = transactions[schema.TX_DATETIME].max() - pd.Timedelta(days=HELD_OUT_DAYS)
    tail = transactions[transactions[schema.TX_DATETIME] > last]
    rng = np.random.default_rng(11)
    hour = tail[schema.TX_DATETIME].dt.hour
    day = tail[schema.TX_DATETIME].dt.day_of_week
    masks = [hour == h for h in (0, 6, 7, 23)] + [day == d for d in (4, 5, 6, 0)]
    picks = [  # the last night hour and the first day hour, Friday to Monday: 2 of each
        rng.choice(tail.index[mask], size=min(2, int(mask.sum())), replace=False) for mask in masks
    ]
    rest = rng.choice(tail.index, size=ROWS, replace=False)
    index = pd.Index(pd.unique(np.concatenate([*picks, rest])))[:ROWS]
    chosen = tail.loc[index].sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID])
    return chosen.reset_index(drop=True)


def _body(row: Any) -> dict[str, Any]:
    return {
        "transaction_id": int(row.TRANSACTION_ID),
        "customer_id": int(row.CUSTOMER_ID),
        "terminal_id": int(row.TERMINAL_ID),
        "amount": float(row.TX_AMOUNT),
        "timestamp": row.TX_DATETIME.isoformat(),
    }


def test_served_model_inputs_equal_the_point_in_time_training_set(
    settings: Settings,
    built: FeatureStore,
    logged_service: tuple[Service, ParquetPredictionLog],
    simulated: tuple[Path, pd.DataFrame],
    make_client: Any,
) -> None:
    service, plog = logged_service
    client = make_client(create_app(settings, service=service))
    held = _held_out(simulated[1])
    for row in held.itertuples(index=False):
        built.materialize(end=row.TX_DATETIME.to_pydatetime())  # the state as of this payment
        response = client.post("/v1/score", json=_body(row))
        assert response.status_code == 200, response.text
        (result,) = response.json()["results"]
        # every stored feature is defined (nothing missing or expired) and served as such
        assert set(result["features"].values()) <= {"present", "request"}, result["features"]
    plog.flush()
    served = plog.read().set_index("transaction_id").loc[held[schema.TRANSACTION_ID]]
    assert len(served) == len(held)
    assert all(list(features) == FEATURES for features in served["features"])
    used = np.array([list(f.values()) for f in served["features"]], dtype=np.float64)

    train = built.get_training_set(held, FEATURES)
    expected = train[FEATURES].to_numpy(dtype=np.float64)
    assert not np.isnan(expected).any(), "every chosen row is defined offline too"
    for j, feat in enumerate(FEATURES):
        np.testing.assert_array_equal(
            used[:, j].astype(np.float32), expected[:, j].astype(np.float32), err_msg=feat
        )
    # the comparison is not vacuous: every request-time value and real windows were seen
    hours = set(held[schema.TX_DATETIME].dt.hour)
    assert {6, 7} <= hours, hours
    assert {4, 5, 6, 0} <= set(held[schema.TX_DATETIME].dt.day_of_week)
    for feat in REQUEST_FEATURES[1:]:
        assert set(train[feat]) == {0.0, 1.0}, feat
    assert (train["TERMINAL_ID_RISK_30DAY_WINDOW"] > 0).any()
    assert (train["CUSTOMER_ID_NB_TX_7DAY_WINDOW"] > 1).any()
