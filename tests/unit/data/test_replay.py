"""Held-out days: the split keeps every transaction once, each part a dataset of its own."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from mlsd.data import io, replay, schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.demo import demo_step
from mlsd.data.replay import split_days
from mlsd.data.simulator import simulate
from mlsd.errors import ValidationError


def test_doctests() -> None:
    result = doctest.testmod(replay)
    assert result.attempted > 0
    assert result.failed == 0


def test_split_keeps_ids_times_and_world_and_counts_days_from_its_own_start() -> None:
    whole = simulate(SimulatorConfig.scaled(60, 120, n_days=10, seed=4))
    history, held = split_days(whole, 7)
    tx = whole.transactions
    assert (
        history.transactions[schema.TX_DATETIME].max() < held.transactions[schema.TX_DATETIME].min()
    )
    ids = [*history.transactions[schema.TRANSACTION_ID], *held.transactions[schema.TRANSACTION_ID]]
    assert ids == tx[schema.TRANSACTION_ID].tolist()
    assert held.transactions[schema.TX_TIME_DAYS].between(0, 2).all()
    seconds = held.transactions[schema.TX_TIME_SECONDS] + 7 * 86_400
    assert seconds.tolist() == tx.loc[tx[schema.TX_TIME_DAYS] >= 7, schema.TX_TIME_SECONDS].tolist()
    assert held.customers is whole.customers
    assert held.terminals is whole.terminals
    assert str(held.config.start_date) == "2018-04-08"
    assert held.config.end_date == whole.config.end_date


@pytest.mark.parametrize("day", [0, 10, -1])
def test_split_day_must_fall_inside_the_dataset(day: int) -> None:
    whole = simulate(SimulatorConfig.scaled(20, 40, n_days=10, seed=4))
    with pytest.raises(ValidationError, match="split day"):
        split_days(whole, day)


def test_demo_step_writes_the_held_out_days_as_their_own_dataset(tmp_path: Path) -> None:
    out, held = tmp_path / "demo", tmp_path / "held"
    summary = demo_step(
        out, n_customers=100, n_terminals=200, n_days=20, replay_days=3, replay_out=held
    )
    assert summary.days == 20
    assert io.read_manifest(out)["end_date"] == "2018-04-20"
    manifest = io.read_manifest(held)
    assert (manifest["start_date"], manifest["end_date"]) == ("2018-04-21", "2018-04-23")
    history, later = io.read_transactions(out), io.read_transactions(held)
    assert summary.transactions == len(history)
    assert history[schema.TX_DATETIME].max() < later[schema.TX_DATETIME].min()
    assert set(later[schema.CUSTOMER_ID]) <= set(range(100))
    with pytest.raises(ValueError, match="replay_out"):
        demo_step(out, n_customers=100, n_terminals=200, n_days=20, replay_days=3)
