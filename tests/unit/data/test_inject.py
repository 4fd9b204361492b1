"""Injected scenario events: each changes only what it says, and tags what it touched."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.events import CARD_TESTING_SCENARIO, COMPROMISE_RATE_SCENARIO
from mlsd.data.simulator import Dataset, simulate

COLUMNS = [c for c in schema.TX_COLUMNS if c not in (schema.TRANSACTION_ID, schema.INJECTED)]


def _with(small_config: SimulatorConfig, *events: dict[str, Any]) -> pd.DataFrame:
    return simulate(small_config.with_changes(scenarios=list(events))).transactions


def test_amount_shift_changes_only_its_segment(small: Dataset) -> None:
    event = {"type": "amount_shift", "name": "rich", "start": "2018-04-21", "fraction": 0.25,
             "factor": 3.0}  # fmt: skip
    shifted = _with(small.config, event)
    base = small.transactions
    assert len(shifted) == len(base)
    tagged = (shifted[schema.INJECTED] == "rich").to_numpy()
    assert tagged.any()
    assert (shifted.loc[tagged, schema.TX_TIME_DAYS] >= 20).all()
    customers = shifted.loc[tagged, schema.CUSTOMER_ID].nunique()
    assert customers <= 0.25 * small.config.n_customers
    pd.testing.assert_frame_equal(shifted.loc[~tagged, COLUMNS], base.loc[~tagged, COLUMNS])
    plain = tagged & (shifted[schema.TX_FRAUD_SCENARIO] != 3).to_numpy()
    expected = np.round(base.loc[plain, schema.TX_AMOUNT].to_numpy() * 3.0, 2)
    assert np.allclose(shifted.loc[plain, schema.TX_AMOUNT].to_numpy(), expected)
    # a pure covariate shift: every label stays what it was
    assert (shifted[schema.TX_FRAUD] == base[schema.TX_FRAUD]).all()
    assert (shifted[schema.TX_FRAUD_SCENARIO] == base[schema.TX_FRAUD_SCENARIO]).all()


def test_amount_shift_that_affects_labels(small: Dataset) -> None:
    event = {"type": "amount_shift", "name": "rich", "start": "2018-04-21", "fraction": 0.25,
             "factor": 3.0, "affects_labels": True}  # fmt: skip
    shifted = _with(small.config, event)
    base = small.transactions
    tagged = (shifted[schema.INJECTED] == "rich").to_numpy()
    pd.testing.assert_frame_equal(shifted.loc[~tagged, COLUMNS], base.loc[~tagged, COLUMNS])
    # bigger amounts cross the handbook's threshold: scenario 1 frauds go up
    s1 = shifted[schema.TX_FRAUD_SCENARIO] == 1
    assert s1.sum() > (base[schema.TX_FRAUD_SCENARIO] == 1).sum()
    genuine = shifted[schema.TX_FRAUD] == 0
    assert (shifted.loc[genuine, schema.TX_AMOUNT] <= small.config.amount_fraud_threshold).all()


def test_card_testing_adds_tagged_small_frauds(small: Dataset) -> None:
    event = {"type": "card_testing", "name": "ct", "start": "2018-05-01", "end": "2018-05-05",
             "bursts_per_day": 4, "tx_per_burst": 6, "max_amount": 2.0}  # fmt: skip
    tx = _with(small.config, event)
    added = tx[tx[schema.INJECTED] == "ct"]
    assert len(added) == 5 * 4 * 6
    assert (added[schema.TX_FRAUD] == 1).all()
    assert (added[schema.TX_FRAUD_SCENARIO] == CARD_TESTING_SCENARIO).all()
    assert added[schema.TX_AMOUNT].between(0.01, 2.0).all()
    assert added[schema.TX_TIME_DAYS].between(30, 34).all()
    assert tx[schema.TX_DATETIME].is_monotonic_increasing
    assert (tx[schema.TRANSACTION_ID].to_numpy() == np.arange(len(tx))).all()
    rest = tx[tx[schema.INJECTED] == ""].reset_index(drop=True)
    pd.testing.assert_frame_equal(rest[COLUMNS], small.transactions[COLUMNS])
    # a burst: one card at one terminal, within minutes
    bursts = added.groupby([schema.CUSTOMER_ID, schema.TERMINAL_ID, schema.TX_TIME_DAYS])
    assert bursts.size().max() >= 6


def test_higher_compromise_rate_adds_scenario_5(small: Dataset) -> None:
    event = {"type": "compromise_rate", "name": "wave", "start": "2018-04-21",
             "terminals_per_day": 2.0}  # fmt: skip
    tx = _with(small.config, event)
    base = small.transactions
    extra = tx[tx[schema.TX_FRAUD_SCENARIO] == COMPROMISE_RATE_SCENARIO]
    assert len(extra) > 0
    assert (extra[schema.INJECTED] == "wave").all()
    assert (extra[schema.TX_TIME_DAYS] >= 20).all()
    # the handbook's own frauds are untouched
    kept = (base[schema.TX_FRAUD_SCENARIO] > 0).to_numpy()
    assert (
        tx.loc[kept, schema.TX_FRAUD_SCENARIO] == base.loc[kept, schema.TX_FRAUD_SCENARIO]
    ).all()
    assert tx[schema.TX_FRAUD].sum() == base[schema.TX_FRAUD].sum() + len(extra)


def test_zero_compromise_rate_stops_terminal_fraud() -> None:
    config = SimulatorConfig.scaled(300, 600, n_days=60, seed=4).with_changes(
        compromised_terminals_per_day=1.0,
        scenarios=[{"type": "compromise_rate", "name": "calm", "start": "2018-04-11",
                    "terminals_per_day": 0}],
    )  # fmt: skip
    tx = simulate(config).transactions
    s2_days = tx.loc[tx[schema.TX_FRAUD_SCENARIO] == 2, schema.TX_TIME_DAYS]
    assert len(s2_days) > 0
    assert s2_days.max() < 10 + 28  # last compromise on day 9, window of 28 days


def test_seasonal_multiplies_the_rate(small: Dataset) -> None:
    event = {"type": "seasonal", "name": "xmas", "start": "2018-04-21", "end": "2018-04-30",
             "factor": 2.0}  # fmt: skip
    tx = _with(small.config, event)
    in_range = tx[schema.TX_TIME_DAYS].between(20, 29)
    assert (tx.loc[in_range, schema.INJECTED] == "xmas").all()
    assert (tx.loc[~in_range, schema.INJECTED] == "").all()
    per_day = tx.groupby(schema.TX_TIME_DAYS).size()
    ratio = per_day.loc[20:29].mean() / per_day.drop(range(20, 30)).mean()
    assert ratio == pytest.approx(2.0, rel=0.1)


def test_overlapping_events_join_their_names(small: Dataset) -> None:
    tx = _with(
        small.config,
        {"type": "seasonal", "name": "busy", "start": "2018-04-21", "factor": 1.2},
        {"type": "amount_shift", "name": "rich", "start": "2018-04-25", "factor": 1.1},
    )
    names = set(tx[schema.INJECTED].unique())
    assert {"", "busy", "busy+rich"} <= names
