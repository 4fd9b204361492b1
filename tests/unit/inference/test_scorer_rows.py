"""The one-transaction row of the scorer equals the batched fill, bit for bit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np

from mlsd.data.transaction import Transaction
from mlsd.features import HANDBOOK_FEATURES, MISSING_VALUE
from mlsd.inference.assemble import FeatureAssembler, _Layout
from mlsd.inference.metrics import ServingMetrics


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


class _Rows:
    """A feature source answering fixed rows (the store's NaN for missing values)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def online_vectors(self, requests: Sequence[Mapping[str, Any]], features: Sequence[str]) -> Any:
        return SimpleNamespace(
            values=self.values.copy(), status=[dict.fromkeys(features, "x") for _ in requests]
        )


def test_fetched_rows_fill_non_finite_values_like_nan_to_num() -> None:
    rng = np.random.default_rng(3)
    for trial in range(50):
        values = rng.normal(size=(2, 4)).astype(np.float32)
        if trial % 2:  # half the trials all finite (the fast path), half with holes
            values[rng.random(values.shape) < 0.3] = rng.choice([np.nan, np.inf, -np.inf])
        scorer = FeatureAssembler(_Rows(values), ServingMetrics())
        rows = scorer._fetch([{}, {}], ["a", "b", "c", "d"])
        got = np.stack([row for row, *_ in rows])
        expected = np.nan_to_num(values, nan=MISSING_VALUE)
        assert got.dtype == np.float32
        assert got.tobytes() == expected.tobytes()
