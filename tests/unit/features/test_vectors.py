"""The small-batch fast path of online vectors agrees exactly with the vectorised path."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from mlsd.errors import ValidationError
from mlsd.features import HANDBOOK_FEATURES
from mlsd.features.store import FeatureStore
from mlsd.features.vectors import (
    SMALL_BATCH,
    STATES,
    OnlineVectors,
    VectorPlan,
    dense_values,
    keyed_values,
    request_values,
    small_values,
    to_us,
)


def _same(a: OnlineVectors, b: OnlineVectors) -> None:
    assert a.features == b.features
    assert a.values.dtype == b.values.dtype == np.float32
    assert a.values.shape == b.values.shape
    # bit for bit, NaN included
    assert a.values.tobytes() == b.values.tobytes()
    assert a.status == b.status
    assert [list(s) for s in a.status] == [list(s) for s in b.status]  # same key order
    assert a.view_versions == b.view_versions
    assert a.newest_event_us == b.newest_event_us


def test_fast_path_agrees_with_vectorised_path_on_random_requests(
    built: FeatureStore, transactions: pd.DataFrame
) -> None:
    end = transactions["TX_DATETIME"].iloc[-1].to_pydatetime()
    built.materialize(end=end)
    rng = np.random.default_rng(11)
    customers = transactions["CUSTOMER_ID"].unique()
    terminals = transactions["TERMINAL_ID"].unique()
    every = list(HANDBOOK_FEATURES)
    statuses: set[str] = set()
    for trial in range(60):
        k = int(rng.integers(1, len(every) + 1))
        features = [every[i] for i in rng.permutation(len(every))[:k]]
        plan = VectorPlan.make(built.resolve(features), features)
        n = int(rng.integers(0, SMALL_BATCH + 1))
        reqs = []
        for _ in range(n):
            known = rng.random() < 0.7  # else an entity the store has never seen: missing
            hours = float(rng.choice([-30.0, 0.5, 20.0, 24.0 * 40, 24.0 * 400]))  # expired
            reqs.append(
                {
                    "CUSTOMER_ID": int(rng.choice(customers)) if known else 10_000_000,
                    "TERMINAL_ID": int(rng.choice(terminals)) if rng.random() < 0.8 else -5,
                    "TX_AMOUNT": float(rng.gamma(2.0, 40.0)),
                    "TX_DATETIME": end + timedelta(hours=hours, seconds=int(rng.integers(0, 1e5))),
                }
            )
        fill = math.nan if trial % 3 else -1.0
        fast = small_values(plan, built.online, reqs, fill)
        slow = dense_values(plan, built.online, reqs, fill)
        _same(fast, slow)
        _same(request_values(plan, built.online, reqs, fill), slow)
        statuses |= {s for row in fast.status for s in row.values()}
    # every case was exercised; -30 h puts the request before some stored rows: "future"
    assert statuses == {"present", "missing", "expired", "future"}


def test_store_uses_either_path_with_the_same_result(
    built: FeatureStore, transactions: pd.DataFrame
) -> None:
    end = transactions["TX_DATETIME"].iloc[-1].to_pydatetime()
    built.materialize(end=end)
    sample = transactions.drop_duplicates("CUSTOMER_ID").head(SMALL_BATCH + 3)
    reqs = [
        {
            "CUSTOMER_ID": int(tx["CUSTOMER_ID"]),
            "TERMINAL_ID": int(tx["TERMINAL_ID"]),
            "TX_AMOUNT": float(tx["TX_AMOUNT"]),
            "TX_DATETIME": end + timedelta(hours=1),
        }
        for _, tx in sample.iterrows()
    ]
    feats = list(HANDBOOK_FEATURES)
    batch = built.online_vectors(reqs, feats)  # above SMALL_BATCH: vectorised
    for i, req in enumerate(reqs):
        one = built.online_vectors([req], feats)  # fast path
        assert one.values.tobytes() == batch.values[i : i + 1].tobytes()
        assert one.status == [batch.status[i]]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"TX_DATETIME": "2018-05-01T00:00:00"}, "TX_DATETIME"),
        ({"TX_DATETIME": "yesterday"}, "TX_DATETIME"),
        ({"CUSTOMER_ID": None}, "CUSTOMER_ID"),
        ({"TERMINAL_ID": "x"}, "TERMINAL_ID"),
        ({"TX_AMOUNT": "lots"}, "TX_AMOUNT"),
    ],
)
def test_both_paths_reject_bad_requests_alike(
    built: FeatureStore, bad: dict[str, object], field: str
) -> None:
    ok = {
        "CUSTOMER_ID": 1,
        "TERMINAL_ID": 2,
        "TX_AMOUNT": 10.0,
        "TX_DATETIME": "2018-05-01T00:00:00+00:00",
    }
    feats = list(HANDBOOK_FEATURES)
    plan = VectorPlan.make(built.resolve(feats), feats)
    for fn in (small_values, dense_values):
        with pytest.raises(ValidationError) as err:
            fn(plan, built.online, [ok, {**ok, **bad}], math.nan)
        assert err.value.field == field


def test_keyed_values_agree_with_the_vectorised_path(
    built: FeatureStore, transactions: pd.DataFrame
) -> None:
    """Rows as key columns (the stream's read): the same float32 values bit for bit, and
    per view the states the status dicts tell; request-time features are refused."""
    end = transactions["TX_DATETIME"].iloc[-1].to_pydatetime()
    built.materialize(end=end)
    rng = np.random.default_rng(12)
    customers = transactions["CUSTOMER_ID"].unique()
    terminals = transactions["TERMINAL_ID"].unique()
    stored = [f for f in HANDBOOK_FEATURES if not built.vector_plan([f]).request]
    seen: set[str] = set()
    for trial in range(30):
        k = int(rng.integers(1, len(stored) + 1))
        features = [stored[i] for i in rng.permutation(len(stored))[:k]]
        plan = built.vector_plan(features)
        n = int(rng.integers(0, 3 * SMALL_BATCH))
        hours = rng.choice([-30.0, 0.5, 20.0, 24.0 * 40, 24.0 * 400], n)
        reqs = [
            {
                "CUSTOMER_ID": int(rng.choice(customers)) if rng.random() < 0.7 else 10_000_000,
                "TERMINAL_ID": int(rng.choice(terminals)) if rng.random() < 0.8 else 99_999_999,
                "TX_DATETIME": end + timedelta(hours=float(h), seconds=int(rng.integers(0, 1e5))),
            }
            for h in hours
        ]
        fill = math.nan if trial % 3 else -1.0
        want = dense_values(plan, built.online, reqs, fill)
        keys = {
            name: np.array([r[name] for r in reqs], dtype=np.int64)
            for name in ("CUSTOMER_ID", "TERMINAL_ID")
        }
        times = np.array([to_us(r["TX_DATETIME"]) for r in reqs], dtype=np.int64)
        values, states = keyed_values(plan, built.online, keys, times, fill)
        assert values.dtype == np.float32
        assert values.tobytes() == want.values.tobytes()
        assert states.shape == (n, len(plan.views))
        for i, row in enumerate(want.status):
            told: dict[str, str] = {}
            for j, slot in enumerate(plan.views):
                told.update(slot.statuses[STATES[states[i, j]]])
            assert told == row
            seen |= set(row.values())
    assert seen == {"present", "missing", "expired", "future"}
    request = [f for f in HANDBOOK_FEATURES if built.vector_plan([f]).request]
    with pytest.raises(ValidationError, match="stored views only"):
        keyed_values(built.vector_plan(request), built.online, {}, np.zeros(0, np.int64), 0.0)
