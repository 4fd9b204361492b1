"""The simulator: table shape, the handbook's generative rules, determinism, statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.simulator import Dataset, simulate
from mlsd.data.summary import HANDBOOK, summarize


def test_columns_types_and_order(small: Dataset) -> None:
    tx = small.transactions
    assert tuple(tx.columns) == schema.TX_COLUMNS
    assert str(tx[schema.TX_DATETIME].dtype) == "datetime64[us, UTC]"
    assert str(tx[schema.LABEL_AVAILABLE_AT].dtype) == "datetime64[us, UTC]"
    assert tx[schema.TX_FRAUD].dtype == np.int8
    assert tx[schema.TX_FRAUD_SCENARIO].dtype == np.int8
    assert (tx[schema.TRANSACTION_ID].to_numpy() == np.arange(len(tx))).all()
    assert tx[schema.TX_DATETIME].is_monotonic_increasing
    assert (tx[schema.INJECTED] == "").all()


def test_time_columns_agree(small: Dataset) -> None:
    tx = small.transactions
    start = pd.Timestamp("2018-04-01", tz="UTC")
    seconds = (tx[schema.TX_DATETIME] - start).dt.total_seconds().astype("int64")
    assert (seconds == tx[schema.TX_TIME_SECONDS]).all()
    assert (tx[schema.TX_TIME_DAYS] == tx[schema.TX_TIME_SECONDS] // 86400).all()
    assert tx[schema.TX_TIME_DAYS].between(0, small.config.n_days - 1).all()
    # times of day strictly inside the day, as in the handbook
    assert (tx[schema.TX_TIME_SECONDS] % 86400 > 0).all()
    delay = tx[schema.LABEL_AVAILABLE_AT] - tx[schema.TX_DATETIME]
    assert (delay == pd.Timedelta(days=small.config.label_delay_days)).all()


def test_amounts_are_non_negative_cents(small: Dataset) -> None:
    amount = small.transactions[schema.TX_AMOUNT].to_numpy()
    assert (amount >= 0).all()
    assert np.allclose(amount, np.round(amount, 2))


def test_terminals_within_radius_of_their_customer(small: Dataset) -> None:
    tx = small.transactions.merge(small.customers, on=schema.CUSTOMER_ID).merge(
        small.terminals, on=schema.TERMINAL_ID
    )
    dist = np.hypot(
        tx["x_customer_id"] - tx["x_terminal_id"], tx["y_customer_id"] - tx["y_terminal_id"]
    )
    assert (dist < small.config.radius).all()
    assert len(tx) == len(small.transactions)


def test_profiles_follow_the_handbook(small: Dataset) -> None:
    customers = small.customers
    assert len(customers) == small.config.n_customers
    assert len(small.terminals) == small.config.n_terminals
    assert customers["mean_amount"].between(5, 100).all()
    assert np.allclose(customers["std_amount"], customers["mean_amount"] / 2)
    assert customers["mean_nb_tx_per_day"].between(0, 4).all()
    assert (customers["nb_terminals"] == customers["available_terminals"].map(len)).all()
    for xy in ("x_customer_id", "y_customer_id"):
        assert customers[xy].between(0, 100).all()


def test_same_seed_same_data_other_seed_other_data(small_config: SimulatorConfig) -> None:
    first = simulate(small_config).transactions
    again = simulate(small_config).transactions
    pd.testing.assert_frame_equal(first, again)
    other = simulate(small_config.with_changes(seed=2)).transactions
    assert len(other) != len(first) or not other[schema.TX_AMOUNT].equals(first[schema.TX_AMOUNT])


def test_scenario_rules_hold(small: Dataset) -> None:
    tx = small.transactions
    fraud, scenario = tx[schema.TX_FRAUD], tx[schema.TX_FRAUD_SCENARIO]
    assert ((scenario > 0) == (fraud == 1)).all()
    # every genuine transaction is at most the threshold (scenario 1 catches the rest)
    assert (tx.loc[fraud == 0, schema.TX_AMOUNT] <= small.config.amount_fraud_threshold).all()
    assert (tx.loc[scenario == 1, schema.TX_AMOUNT] > small.config.amount_fraud_threshold).all()
    assert set(scenario.unique()) <= {0, 1, 2, 3}


def test_statistics_match_the_handbook_at_small_scale() -> None:
    """1,000 customers, 2,000 terminals, 183 days (a fifth of the handbook's world, with
    its compromise rates scaled), pooled over three seeds."""
    summaries = [
        summarize(simulate(SimulatorConfig.scaled(1000, 2000, seed=seed)).transactions, 183)
        for seed in (11, 12, 13)
    ]
    tx_per_day_per_1000 = np.mean([s.tx_per_day_mean for s in summaries])
    assert tx_per_day_per_1000 == pytest.approx(HANDBOOK["tx_per_day"] / 5, rel=0.04)
    frauds = sum(s.frauds for s in summaries)
    rate = frauds / sum(s.transactions for s in summaries)
    assert rate == pytest.approx(HANDBOOK["fraud_rate"], rel=0.15)
    shares = {k: sum(s.per_scenario.get(k, 0) for s in summaries) / frauds for k in (1, 2, 3)}
    assert shares[1] == pytest.approx(HANDBOOK["scenario_share"][1], abs=0.025)
    assert shares[2] == pytest.approx(HANDBOOK["scenario_share"][2], abs=0.06)
    assert shares[3] == pytest.approx(HANDBOOK["scenario_share"][3], abs=0.06)


def test_tiny_worlds_work() -> None:
    """One customer, one terminal, one day: valid, possibly empty, never an error."""
    tx = simulate(SimulatorConfig(n_customers=1, n_terminals=1, n_days=1, radius=200)).transactions
    assert tuple(tx.columns) == schema.TX_COLUMNS
    none = simulate(SimulatorConfig(n_customers=3, n_terminals=2, n_days=3, radius=0.001))
    assert len(none.transactions) == 0  # nobody has a terminal in reach


def test_summary_counts(small: Dataset) -> None:
    tx = small.transactions
    summary = summarize(tx, small.config.n_days)
    assert summary.transactions == len(tx)
    assert summary.frauds == int(tx[schema.TX_FRAUD].sum()) == sum(summary.per_scenario.values())
    assert sum(summary.per_day_transactions) == len(tx)
    assert sum(summary.per_day_frauds) == summary.frauds
    assert len(summary.per_day_transactions) == small.config.n_days
    assert summary.tx_per_day_min == min(summary.per_day_transactions)
