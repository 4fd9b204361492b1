"""Per-arm figures against the labels, counted by hand; the arms' sequential comparison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlsd.errors import NotFoundError
from mlsd.rollout.arms import arm_metrics, compare_arms

T0 = datetime(2018, 7, 10, 12, tzinfo=UTC)


def _log_and_labels() -> tuple[pd.DataFrame, pd.DataFrame]:
    # tx 1-4 on the champion, 5-8 on the challenger, 9 a shadow copy (never an arm)
    variant = ["ab:champion"] * 4 + ["ab:challenger"] * 4 + ["ab2:shadow"]
    decision = ["fraud", "fraud", "legit", "legit", "fraud", "legit", "legit", "legit", "fraud"]
    ts = [pd.Timestamp(T0 + timedelta(hours=i)) for i in range(9)]
    log = pd.DataFrame({
        "ts": ts, "endpoint": "score", "transaction_id": [1, 2, 3, 4, 5, 6, 7, 8, 1],
        "variant": variant, "version": ["1"] * 4 + ["2"] * 5, "score": 0.5,
        "decision": decision, "threshold": 0.5, "latency_ms": 1.0,
    })  # fmt: skip
    labels = pd.DataFrame({
        "TRANSACTION_ID": range(1, 9), "CUSTOMER_ID": [1, 2, 3, 4, 5, 6, 7, 8],
        "TX_DATETIME": ts[:8], "TX_AMOUNT": [100.0, 10.0, 50.0, 5.0, 70.0, 30.0, 1.0, 2.0],
        "TX_FRAUD": [1, 0, 1, 0, 1, 1, 0, 0],
    })  # fmt: skip
    return log, labels


def test_each_arm_is_counted_against_its_labels() -> None:
    log, labels = _log_and_labels()
    arms = {a.variant: a for a in arm_metrics(log, labels, rollout="ab")}
    assert set(arms) == {"ab:champion", "ab:challenger"}
    champion, challenger = arms["ab:champion"], arms["ab:challenger"]
    assert (champion.flagged, champion.frauds, champion.caught_eur, champion.missed_eur) == (
        2, 2, 100.0, 50.0,
    )  # fmt: skip
    assert champion.precision is not None
    assert champion.precision.estimate == 0.5
    assert champion.false_positive_rate is not None
    assert champion.false_positive_rate.estimate == 0.5
    assert champion.cards_flagged_per_day == 2.0
    assert challenger.precision is not None
    assert challenger.precision.estimate == 1.0
    assert challenger.recall is not None
    assert challenger.recall.estimate == 0.5
    assert challenger.false_positive_rate is not None
    assert challenger.false_positive_rate.estimate == 0.0


def test_the_comparison_needs_evidence_and_finds_a_large_difference() -> None:
    log, labels = _log_and_labels()
    small = compare_arms(log, labels, "ab:champion", "ab:challenger")
    assert small.false_positive_rate_diff.estimate == -0.5
    assert small.false_positive_rate_p > 0.05, "four rows per arm prove nothing"
    rng = np.random.default_rng(0)
    n = 6000
    arm = np.where(np.arange(n) % 2 == 0, "ab:champion", "ab:challenger")
    fraud = rng.random(n) < 0.05
    fp_rate = np.where(arm == "ab:champion", 0.02, 0.06)  # the challenger blocks 3x more
    flag = fraud | (rng.random(n) < fp_rate)
    ts = pd.date_range(T0, periods=n, freq="min")
    big_log = pd.DataFrame({
        "ts": ts, "endpoint": "score", "transaction_id": np.arange(n), "variant": arm,
        "version": "1", "score": 0.5, "decision": np.where(flag, "fraud", "legit"),
        "threshold": 0.5, "latency_ms": 1.0,
    })  # fmt: skip
    big_labels = pd.DataFrame({
        "TRANSACTION_ID": np.arange(n), "CUSTOMER_ID": np.arange(n), "TX_DATETIME": ts,
        "TX_AMOUNT": 10.0, "TX_FRAUD": fraud.astype(int),
    })  # fmt: skip
    big = compare_arms(big_log, big_labels, "ab:champion", "ab:challenger")
    assert big.false_positive_rate_diff.low > 0
    assert big.false_positive_rate_p < 0.01
    assert big.recall_diff is not None
    assert big.recall_diff.estimate == pytest.approx(0.0)


def test_an_unknown_rollout_is_named() -> None:
    log, labels = _log_and_labels()
    with pytest.raises(NotFoundError, match="'zz'"):
        arm_metrics(log, labels, rollout="zz")
