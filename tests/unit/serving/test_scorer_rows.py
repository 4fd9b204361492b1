"""The one-transaction row of the scorer equals the batched fill, bit for bit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from mlsd.features import HANDBOOK_FEATURES
from mlsd.serving.schemas import Transaction
from mlsd.serving.scorer import _Layout


def test_one_row_equals_the_batched_fill_on_random_rows() -> None:
    rng = np.random.default_rng(5)
    names = list(HANDBOOK_FEATURES)
    start = datetime(2018, 4, 1, tzinfo=UTC)
    for _ in range(200):
        picked = tuple(names[i] for i in rng.permutation(len(names))[: rng.integers(1, 16)])
        layout = _Layout(picked)
        tx = Transaction(
            transaction_id=1,
            customer_id=2,
            terminal_id=3,
            amount=float(rng.gamma(2.0, 50.0)),
            timestamp=start + timedelta(seconds=int(rng.integers(0, 90 * 86_400))),
        )
        found = rng.normal(size=(1, len(layout.stored))).astype(np.float32)
        found[rng.random(found.shape) < 0.3] = np.nan  # missing values stay NaN
        batched = np.empty((1, len(picked)), dtype=np.float32)
        layout.fill(batched, [tx], found)
        one = layout.one_row(tx, found)
        assert one.dtype == np.float32
        assert one.shape == batched.shape
        assert one.tobytes() == batched.tobytes()
