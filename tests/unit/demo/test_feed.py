"""The demo's feature feed: each replayed transaction's rows are the batch pipeline's, the
terminal risk never uses a label younger than the 7-day delay, and a push lands online."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.io import write_dataset
from mlsd.data.replay import split_days
from mlsd.data.simulator import Dataset, simulate
from mlsd.demo.feed import FeatureFeed, replay_rows
from mlsd.features.store import FeatureStore
from mlsd.settings import Settings


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[FeatureStore, Path, Path, Dataset]]:
    whole = simulate(SimulatorConfig.scaled(80, 160, n_days=24, seed=5))
    history, held = split_days(whole, 20)
    write_dataset(history, tmp_path / "history")
    write_dataset(held, tmp_path / "held")
    store = FeatureStore.open(Settings(home=tmp_path / "home"))
    store.apply()
    yield store, tmp_path / "history", tmp_path / "held", held
    store.close()


def test_terminal_risk_of_the_replay_never_sees_a_label_of_the_replayed_days(
    world: tuple[FeatureStore, Path, Path, Dataset], tmp_path: Path
) -> None:
    store, history, held_dir, held = world
    ids = held.transactions[schema.TRANSACTION_ID].to_numpy(dtype=np.int64)
    before = {r.view: r for r in replay_rows(store, history, held_dir, ids)}
    flipped = held.transactions.copy()
    flipped[schema.TX_FRAUD] = 1 - flipped[schema.TX_FRAUD]  # every label of the 4 days wrong
    other = tmp_path / "flipped"
    write_dataset(Dataset(flipped, held.customers, held.terminals, held.config), other)
    after = {r.view: r for r in replay_rows(store, history, other, ids)}
    # 4 replayed days < the 7-day label delay: the risk windows end before the replay starts
    assert np.array_equal(before["terminal_risk"].values, after["terminal_risk"].values)
    assert np.array_equal(before["customer_spending"].values, after["customer_spending"].values)
    risk = before["terminal_risk"]
    assert np.array_equal(risk.keys, held.transactions[schema.TERMINAL_ID].to_numpy())
    event = held.transactions[schema.TX_DATETIME].dt.as_unit("us").astype("int64").to_numpy()
    assert np.array_equal(risk.event_us, event)  # each row is of its own transaction's time
    counts = before["customer_spending"].values[:, 0]  # NB_TX_1DAY, the current one included
    assert (counts >= 1).all()


def test_push_writes_the_rows_of_a_wave_into_the_online_store(
    world: tuple[FeatureStore, Path, Path, Dataset],
) -> None:
    store, history, held_dir, held = world
    feed, traffic = FeatureFeed.open(store, history, held_dir)
    assert len(traffic) == len(held.transactions)
    feed.push(0, 3)
    assert feed.pushed == 6  # a customer row and a terminal row each
    versions = store.view_versions()
    for i in range(3):
        tx = traffic.iloc[i]
        got = store.online.read(
            [
                ("customer_spending", versions["customer_spending"], int(tx[schema.CUSTOMER_ID])),
                ("terminal_risk", versions["terminal_risk"], int(tx[schema.TERMINAL_ID])),
            ]
        )
        assert all(rec is not None for rec in got)
