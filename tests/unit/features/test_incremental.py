"""The incremental specification gives every event the batch pipeline's value.

One window view uses every function, undelayed and delayed windows from minutes to days
and every derived operation, over Parquet files with timestamp ties; the reference
(`WindowState`) is fed the same events one by one and read right after each.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.errors import ValidationError
from mlsd.features.aggregations import FUNCTIONS, Aggregation, Derived
from mlsd.features.definitions import Entity, FeatureView
from mlsd.features.handbook import REQUEST_VIEW, TERMINAL_VIEW
from mlsd.features.incremental import WindowState
from mlsd.features.pipeline import compute_view_frame
from mlsd.features.sources import Source
from mlsd.features.testing import synthetic_transactions

CUSTOMER = Entity("customer", schema.CUSTOMER_ID)
H, D = timedelta(hours=1), timedelta(days=1)


def _aggregations() -> tuple[Aggregation, ...]:
    out = []
    for window, delay, tag in ((timedelta(minutes=90), timedelta(0), "M"), (3 * D, D, "L")):
        for fn in FUNCTIONS:
            col = None if fn == "count" else (
                schema.TERMINAL_ID if fn == "count_distinct" else schema.TX_AMOUNT
            )  # fmt: skip
            out.append(Aggregation(f"{fn.upper()}_{tag}", fn, col, window, delay))
    return (*out, Aggregation("MEAN_W", "mean", schema.TX_AMOUNT, 7 * D),
            Aggregation("STD_W", "std", schema.TX_AMOUNT, 7 * D))  # fmt: skip


DERIVED = (
    Derived("Z", "zscore", (schema.TX_AMOUNT, "MEAN_W", "STD_W")),
    Derived("R", "ratio", ("SUM_L", "COUNT_L"), default=-1.0),
    Derived("DIFF", "diff", (schema.TX_AMOUNT, "MEAN_M")),
    Derived("PROD", "product", ("COUNT_M", "MAX_M")),
)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Source]:
    """Transactions with ties, written as Hive day partitions; their Parquet source."""
    tx = synthetic_transactions(n_customers=12, n_terminals=15, days=12, tx_per_day=6,
                                seed=3, tie_fraction=0.1)  # fmt: skip
    folder = tmp_path_factory.mktemp("events")
    for day, part in tx.groupby(tx[schema.TX_DATETIME].dt.strftime("%Y-%m-%d")):
        (folder / f"day={day}").mkdir()
        part.drop(columns=[schema.INJECTED]).to_parquet(folder / f"day={day}" / "p.parquet")
    src = Source("payments", path=str(folder), tie_break=schema.TRANSACTION_ID)
    return tx, src


def _view(src: Source) -> FeatureView:
    aggs = _aggregations()
    return FeatureView(
        "everything", CUSTOMER, "window",
        tuple(a.name for a in aggs) + tuple(d.name for d in DERIVED),
        timedelta(days=7), source=src, aggregations=aggs, derived=DERIVED,
    )  # fmt: skip


def test_every_event_gets_the_batch_value(events: tuple[pd.DataFrame, Source]) -> None:
    tx, src = events
    view = _view(src)
    batch = compute_view_frame(None, view).df().set_index(schema.TRANSACTION_ID)
    assert len(batch) == len(tx)
    assert tx.duplicated([schema.CUSTOMER_ID, schema.TX_DATETIME]).sum() > 10  # ties exist
    state = WindowState(view)
    worst: dict[str, float] = {}
    for row in tx.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID]).to_dict("records"):
        got = state.update(row).get(row[schema.CUSTOMER_ID], row[schema.TX_DATETIME])
        want = batch.loc[row[schema.TRANSACTION_ID]]
        for f in view.features:
            a, b = got[f], float(want[f])
            assert np.isnan(a) == np.isnan(b), (f, row, a, b)
            if not np.isnan(a):
                worst[f] = max(worst.get(f, 0.0), abs(a - b) / max(1.0, abs(b)))
    assert max(worst.values()) < 1e-9, worst
    assert set(worst) == set(view.features)  # every feature had values to compare
    # the state is bounded by the longest span (7 days here), not by the 12 days of history
    longest = max(state.held(k) for k in tx[schema.CUSTOMER_ID].unique())
    per_day = tx.groupby([schema.CUSTOMER_ID, tx[schema.TX_DATETIME].dt.date]).size().max()
    assert longest <= 8 * per_day
    assert longest < tx.groupby(schema.CUSTOMER_ID).size().min()


def test_late_events_beyond_the_horizon_are_dropped(events: tuple[pd.DataFrame, Source]) -> None:
    view = _view(events[1])
    state = WindowState(view)
    t0 = pd.Timestamp("2018-04-10", tz="UTC")
    row = {schema.CUSTOMER_ID: 1, schema.TERMINAL_ID: 2, schema.TX_AMOUNT: 5.0}
    state.update({**row, schema.TX_DATETIME: t0})
    state.update({**row, schema.TX_DATETIME: t0 - 8 * D})  # span is 7 days: too late
    assert state.late_dropped == 1
    assert state.held(1) == 1
    state.update({**row, schema.TX_DATETIME: t0 - H})  # late but placeable: inserted in order
    assert state.held(1) == 2
    assert state.get(1, t0)["COUNT_M"] == 2.0


def test_only_window_views_are_streamable() -> None:
    assert TERMINAL_VIEW.streamable
    assert not REQUEST_VIEW.streamable
    with pytest.raises(ValidationError, match="not streamable") as err:
        WindowState(REQUEST_VIEW)
    assert err.value.field == "kind"
    sql = FeatureView("batch_only", CUSTOMER, "sql", ("F",), D,
                      sql="SELECT CUSTOMER_ID, TX_DATETIME, 1.0 AS F FROM {source}")  # fmt: skip
    assert not sql.streamable
    with pytest.raises(ValidationError, match=r"event lacks column .TX_DATETIME."):
        WindowState(_view(Source("p", path=str(Path(__file__))))).update({schema.CUSTOMER_ID: 1})
