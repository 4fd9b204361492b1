"""Fraud scenario building blocks against plain-loop references (the handbook's way)."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.data import frauds


def test_spread_averages_the_rate() -> None:
    assert frauds.spread(2.0, 5).tolist() == [2, 2, 2, 2, 2]
    assert frauds.spread(0.5, 6).tolist() == [0, 1, 0, 1, 0, 1]
    assert frauds.spread(0.3, 100).sum() == 30
    assert frauds.spread(0.0, 4).sum() == 0


def test_draw_gives_distinct_ids_per_day() -> None:
    drawn = frauds.Compromises.draw([3, 0, 5, 12], 10, np.random.default_rng(0))
    assert np.bincount(drawn.days, minlength=4).tolist() == [3, 0, 5, 10]  # capped at 10
    for day in range(4):
        ids = drawn.ids[drawn.days == day]
        assert len(set(ids.tolist())) == len(ids)
        assert ((ids >= 0) & (ids < 10)).all()


def test_covered_matches_a_loop() -> None:
    rng = np.random.default_rng(3)
    n_days, duration = 30, 7
    ids = rng.integers(0, 20, size=500)
    days = rng.integers(0, n_days, size=500)
    comp = frauds.Compromises.draw([1] * n_days, 20, rng)
    expected = np.zeros(500, dtype=bool)
    for day, who in zip(comp.days.tolist(), comp.ids.tolist(), strict=True):
        expected |= (ids == who) & (days >= day) & (days < day + duration)
    got = frauds.covered(ids, days, comp, duration, n_days)
    assert got.tolist() == expected.tolist()
    assert 0 < got.sum() < 500


def test_customer_draws_take_a_third_of_each_window() -> None:
    rng = np.random.default_rng(5)
    n_days, duration = 40, 14
    customer = rng.integers(0, 6, size=900)
    days = rng.integers(0, n_days, size=900)
    # one compromise per customer, windows apart, so each draw is on its own window
    comp = frauds.Compromises(
        days=np.array([0, 5, 10, 20, 25, 30]), ids=np.array([0, 1, 2, 3, 4, 5])
    )
    draws = frauds.customer_fraud_draws(customer, days, comp, duration, n_days, rng)
    assert set(np.unique(draws).tolist()) <= {0, 1}
    for day, who in zip(comp.days.tolist(), comp.ids.tolist(), strict=True):
        window = (customer == who) & (days >= day) & (days < day + duration)
        assert draws[window].sum() == window.sum() // 3
        assert draws[~window & (customer == who)].sum() == 0


def test_overlapping_customer_compromises_can_draw_twice() -> None:
    customer = np.zeros(300, dtype=np.int64)
    days = np.zeros(300, dtype=np.int64)
    comp = frauds.Compromises(days=np.array([0, 0]), ids=np.array([0, 0]))
    draws = frauds.customer_fraud_draws(customer, days, comp, 14, 5, np.random.default_rng(1))
    assert draws.sum() == 2 * 100
    assert draws.max() <= 2


@pytest.mark.parametrize("n", [0, 1, 2])
def test_small_windows_draw_nothing(n: int) -> None:
    customer = np.zeros(n, dtype=np.int64)
    days = np.zeros(n, dtype=np.int64)
    comp = frauds.Compromises(days=np.array([0]), ids=np.array([0]))
    draws = frauds.customer_fraud_draws(customer, days, comp, 14, 5, np.random.default_rng(1))
    assert draws.sum() == 0
