"""Done when: user definitions over plain Parquet files give one value everywhere.

A definitions folder written here (no mlsd code involved but the public classes) declares
the handbook's 15 features over a Parquet folder, plus two new views: the distinct
terminals of a customer over 1 day, and the amount's z-score against the customer's 30-day
mean and standard deviation. The batch pipeline, the point-in-time join, the online store
and the incremental specification must agree on every value (and the handbook's views
must agree with the handbook's pandas code).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.features.incremental import WindowState
from mlsd.features.pipeline import LAST_FLAG, compute_view_frame
from mlsd.features.reference import reference_features
from mlsd.features.store import FeatureStore
from mlsd.features.testing import synthetic_transactions
from mlsd.settings import Settings

DEFINITIONS = """
from datetime import timedelta
from mlsd.features.aggregations import Aggregation, Derived
from mlsd.features.definitions import Entity, FeatureView
from mlsd.features.sources import Source
from mlsd.features.transforms import RequestTransform

customer = Entity("customer", "CUSTOMER_ID")
terminal = Entity("terminal", "TERMINAL_ID")
payments = Source("payments", path={path!r}, timestamp_field="TX_DATETIME",
                  tie_break="TRANSACTION_ID")
DAY = timedelta(days=1)

spending = FeatureView(
    "customer_spending", customer, "window",
    tuple(f"CUSTOMER_ID_{{k}}_{{w}}DAY_WINDOW"
          for w in (1, 7, 30) for k in ("NB_TX", "AVG_AMOUNT")),
    timedelta(days=30), source=payments,
    aggregations=tuple(
        a for w in (1, 7, 30) for a in (
            Aggregation(f"CUSTOMER_ID_NB_TX_{{w}}DAY_WINDOW", "count", None, w * DAY),
            Aggregation(f"CUSTOMER_ID_AVG_AMOUNT_{{w}}DAY_WINDOW", "mean", "TX_AMOUNT", w * DAY),
        )
    ),
)
risk = FeatureView(
    "terminal_risk", terminal, "window",
    tuple(f"TERMINAL_ID_{{k}}_{{w}}DAY_WINDOW" for w in (1, 7, 30) for k in ("NB_TX", "RISK")),
    timedelta(days=30), source=payments,
    aggregations=tuple(
        a for w in (1, 7, 30) for a in (
            Aggregation(f"TERMINAL_ID_NB_TX_{{w}}DAY_WINDOW", "count", None, w * DAY, 7 * DAY),
            Aggregation(f"FRAUDS_{{w}}", "sum", "TX_FRAUD", w * DAY, 7 * DAY),
        )
    ),
    derived=tuple(
        Derived(f"TERMINAL_ID_RISK_{{w}}DAY_WINDOW", "ratio",
                (f"FRAUDS_{{w}}", f"TERMINAL_ID_NB_TX_{{w}}DAY_WINDOW"))
        for w in (1, 7, 30)
    ),
)
request = FeatureView(
    "transaction_request", None, "request",
    ("TX_AMOUNT", "TX_DURING_WEEKEND", "TX_DURING_NIGHT"), timedelta(0),
    transforms=(
        RequestTransform("TX_AMOUNT", "amount"),
        RequestTransform("TX_DURING_WEEKEND", "timestamp", "weekday", ">=", 5),
        RequestTransform("TX_DURING_NIGHT", "timestamp", "hour", "<=", 6),
    ),
)
terminals = FeatureView(
    "customer_terminals", customer, "window", ("CUSTOMER_ID_NB_TERMINALS_1DAY",),
    timedelta(days=1), source=payments,
    aggregations=(Aggregation("CUSTOMER_ID_NB_TERMINALS_1DAY", "count_distinct",
                              "TERMINAL_ID", DAY),),
)
amount_z = FeatureView(
    "customer_amount_z", customer, "window", ("CUSTOMER_ID_AMOUNT_Z_30DAY",),
    timedelta(days=30), source=payments,
    aggregations=(Aggregation("MEAN_30", "mean", "TX_AMOUNT", 30 * DAY),
                  Aggregation("STD_30", "std", "TX_AMOUNT", 30 * DAY)),
    derived=(Derived("CUSTOMER_ID_AMOUNT_Z_30DAY", "zscore", ("TX_AMOUNT", "MEAN_30", "STD_30")),),
)
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """Transactions with ties as plain Parquet files (one per day), and a definitions folder."""
    root = tmp_path_factory.mktemp("e2e")
    tx = synthetic_transactions(n_customers=25, n_terminals=30, days=45, tx_per_day=3,
                                seed=11, tie_fraction=0.05)  # fmt: skip
    data = root / "payments"
    data.mkdir()
    for day, part in tx.groupby(tx[schema.TX_DATETIME].dt.strftime("%Y%m%d")):
        part.to_parquet(data / f"{day}.parquet", index=False)
    repo = root / "my_features"
    repo.mkdir()
    (repo / "definitions.py").write_text(textwrap.dedent(DEFINITIONS.format(path=str(data))))
    return tx, repo


def _close(a: np.ndarray, b: np.ndarray, what: str) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=what)


def test_one_value_from_batch_pit_online_and_incremental(
    world: tuple[pd.DataFrame, Path], tmp_path: Path
) -> None:
    tx, repo = world
    store = FeatureStore.open(Settings(home=tmp_path / "home"))
    try:
        versions = store.apply_path(repo)
        assert len(versions) == 5
        store.build()  # every view reads its own source: no dataset folder
        views = {n: store.registry.get(n) for n in versions}
        windows = [v for v in views.values() if v.kind == "window"]
        features = [f for v in views.values() for f in v.features]
        assert len(features) == 17

        # batch: every event's values; the handbook's views agree with its pandas code
        batch = {
            v.name: compute_view_frame(None, v).df().set_index(schema.TRANSACTION_ID).sort_index()
            for v in windows
        }
        ref = reference_features(tx)
        for name in ("customer_spending", "terminal_risk"):
            for f in views[name].features:
                _close(batch[name][f].to_numpy(), ref[f].to_numpy(np.float64), f)
        z = batch["customer_amount_z"]["CUSTOMER_ID_AMOUNT_Z_30DAY"]
        assert z.notna().all()
        assert (z != 0).mean() > 0.9
        assert batch["customer_terminals"]["CUSTOMER_ID_NB_TERMINALS_1DAY"].max() >= 2

        # incremental: fed event by event in (time, id) order, read after each
        ordered = tx.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID])
        for v in windows:
            state = WindowState(v)
            key = v.entity.join_key if v.entity else ""
            got = pd.DataFrame(
                [
                    state.update(r).get(r[key], r[schema.TX_DATETIME])
                    for r in ordered.to_dict("records")
                ],
                index=ordered[schema.TRANSACTION_ID],
            ).sort_index()
            for f in v.features:
                _close(got[f].to_numpy(), batch[v.name][f].to_numpy(), f"incremental {f}")

        # point in time: each transaction gets its own event's row, or with ties at its
        # time the last tied event's row (one row per entity and time)
        train = store.get_training_set(tx, features)
        for v in windows:
            b = batch[v.name].reindex(tx[schema.TRANSACTION_ID])
            last = b[LAST_FLAG].to_numpy()
            key = v.entity.join_key if v.entity else ""
            for f in v.features:
                want = pd.Series(np.where(last, b[f].to_numpy(), np.nan))
                grouped = want.groupby([tx[key].to_numpy(), tx[schema.TX_DATETIME].to_numpy()])
                _close(train[f].to_numpy(), grouped.transform("last").to_numpy(), f"pit {f}")
        _close(train["TX_AMOUNT"].to_numpy(), tx[schema.TX_AMOUNT].to_numpy(), "request")

        # online: materialized up to checkpoints, read for every entity at each one
        stamps = tx[schema.TX_DATETIME]
        for when in (stamps.iloc[len(tx) // 2], stamps.iloc[-1]):
            store.materialize(end=when.to_pydatetime())
            probe = tx[[schema.CUSTOMER_ID, schema.TERMINAL_ID, schema.TX_AMOUNT]].copy()
            probe[schema.TX_DATETIME] = when
            vec = store.online_vectors(probe.to_dict("records"), features)
            pit = store.get_training_set(probe, features)
            for j, f in enumerate(features):
                np.testing.assert_allclose(
                    vec.values[:, j], pit[f].to_numpy(np.float32), rtol=1e-6, equal_nan=True,
                    err_msg=f"online {f} at {when}",
                )  # fmt: skip
            assert np.isfinite(vec.values).mean() > 0.5
    finally:
        store.close()
