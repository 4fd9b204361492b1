"""`FastWindowState.advance` (a batch at a time) against the reference fed event by event."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.data import schema
from mlsd.features.definitions import FeatureView
from mlsd.features.handbook import CUSTOMER_VIEW, TERMINAL_VIEW
from mlsd.features.incremental import WindowState
from mlsd.streaming.window_state import FastWindowState, pairwise_sums

from .test_window_features import _every_function_view


def test_pairwise_sums_round_as_numpy_does() -> None:
    rng = np.random.default_rng(1)
    x = np.round(rng.gamma(2.0, 30.0, 5000), 2)
    lo = rng.integers(0, 4000, 3000)
    hi = lo + np.r_[rng.integers(0, 140, 2900), rng.integers(140, 900, 100)]
    got = pairwise_sums(x, lo, hi)
    want = np.array([np.add.reduce(x[a:b]) for a, b in zip(lo, hi, strict=True)])
    assert np.array_equal(got, want)


@pytest.mark.parametrize("view", [CUSTOMER_VIEW, TERMINAL_VIEW, _every_function_view()],
                         ids=lambda v: v.name)  # fmt: skip
def test_a_batch_is_the_reference_event_by_event(view: FeatureView) -> None:
    """Batches of random events (repeated keys, ties, late ones, some not inserted): each
    read equals the reference's after the same updates, and so does the state after."""
    rng = np.random.default_rng(7)
    ref, fast = WindowState(view), FastWindowState(view)
    hour = 3_600_000_000
    span_h = max(ref.span // hour, 6)
    t = 0
    for _ in range(100):
        n = int(rng.integers(1, 80))
        steps = rng.integers(0, 12, n) * 600_000_000 * (rng.random(n) > 0.2)
        times = t + np.cumsum(steps)
        t = int(times[-1])
        base = t - int(rng.integers(0, span_h * 2 * hour)) if rng.random() < 0.3 else None
        if base is not None:  # a whole late batch (time-ordered itself)
            times = np.sort(base + (times - times[0]) // 7)
        keys = rng.integers(0, 12, n)
        insert = rng.random(n) > 0.1
        columns = {
            schema.TX_AMOUNT: np.round(rng.gamma(2.0, 30.0, n), 2),
            schema.TX_FRAUD: (rng.random(n) < 0.1).astype(np.int64),
            schema.TERMINAL_ID: rng.integers(0, 20, n),
        }
        want = []
        for i in range(n):
            event = {ref.key: int(keys[i]), ref.time: int(times[i]),
                     **{c: columns[c][i].item() for c in ref.columns}}  # fmt: skip
            if insert[i]:
                ref.update(event)
            want.append(list(ref.get(int(keys[i]), int(times[i])).values()))
        rows = np.column_stack([columns[c].astype(np.float64) for c in fast.columns])
        got = fast.advance(keys, times, rows.reshape(n, -1), insert)
        assert np.array_equal(got, np.array(want), equal_nan=True)
        assert fast.late_dropped == ref.late_dropped
        assert all(fast.held(k) == ref.held(k) for k in range(12))
    assert ref.late_dropped > 0


def test_a_batch_out_of_time_order_is_refused() -> None:
    fast = FastWindowState(CUSTOMER_VIEW)
    with pytest.raises(Exception, match="time order"):
        fast.advance(np.array([1, 1]), np.array([5, 4]), np.zeros((2, 1)))
