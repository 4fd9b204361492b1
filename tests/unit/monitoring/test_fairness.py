"""Fairness by segment: the rates, the gap and its bootstrap interval, and no-data states."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.errors import ValidationError
from mlsd.monitoring.fairness import gauges_text, segment_labels, window_fairness
from mlsd.monitoring.window import NoDataError

T0 = datetime(2018, 7, 1, tzinfo=UTC)
AS_OF = T0 + timedelta(days=30)
N = 8000


def world(
    fpr: dict[str, float], seed: int = 0, recall: float = 0.6
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(a prediction log read, labels with segments): 8,000 transactions of 400 customers,
    2 % fraud, declines at `recall` for frauds and at each region's false-positive rate."""
    rng = np.random.default_rng(seed)
    customers = pd.DataFrame(
        {
            schema.CUSTOMER_ID: np.arange(400),
            schema.REGION: np.array(list(fpr))[np.arange(400) % len(fpr)],
            schema.AGE_BAND: np.array(["18-29", "30-44", "45-64", "65+"])[rng.integers(0, 4, 400)],
        }
    )
    customer = rng.integers(0, 400, N)
    fraud = (rng.random(N) < 0.02).astype(np.int8)
    region = customers[schema.REGION].to_numpy()[customer]
    rate = np.array([fpr[r] for r in region])
    declined = np.where(fraud == 1, rng.random(N) < recall, rng.random(N) < rate)
    when = T0 + pd.to_timedelta(np.arange(N) * 60, unit="s")
    transactions = pd.DataFrame(
        {
            schema.TRANSACTION_ID: np.arange(N, dtype=np.int64),
            schema.CUSTOMER_ID: customer,
            schema.TX_DATETIME: when,
            schema.TX_AMOUNT: 50.0,
            schema.TX_FRAUD: fraud,
            schema.LABEL_AVAILABLE_AT: when + pd.Timedelta(days=7),
        }
    )
    log = pd.DataFrame(
        {
            "ts": when,
            "model": "fraud",
            "version": "3",
            "variant": "champion",
            "endpoint": "score",
            "transaction_id": pd.array(np.arange(N), dtype="Int64"),
            "score": np.where(declined, 0.9, 0.1),
            "decision": np.where(declined, "fraud", "legit"),
            "threshold": 0.5,
            "latency_ms": 1.0,
        }
    )
    return log, segment_labels(transactions, customers, AS_OF)


REGIONS4 = {"north-west": 0.10, "north-east": 0.01, "south-west": 0.01, "south-east": 0.01}
EVEN = dict.fromkeys(REGIONS4, 0.02)


def test_a_planted_false_decline_gap_is_found_with_an_interval_excluding_zero() -> None:
    log, labels = world(REGIONS4)
    (report,) = window_fairness(log, labels, "region", as_of=AS_OF)
    fpr = report.gap("false_positive_rate")
    assert fpr.highest == "north-west"
    assert fpr.gap is not None
    assert fpr.low is not None
    assert fpr.high is not None
    assert 0.07 < fpr.gap < 0.11
    assert 0.0 < fpr.low < fpr.gap < fpr.high
    assert fpr.p_value is not None
    assert fpr.p_value < 0.001  # no pooled-rate draw comes near a 9-point gap
    # the same figures from the raw rows
    joined = log.merge(labels, left_on="transaction_id", right_on=schema.TRANSACTION_ID)
    legit = joined[joined[schema.TX_FRAUD] == 0]
    by = (legit["decision"] == "fraud").groupby(legit[schema.REGION]).mean()
    assert fpr.gap == pytest.approx(by.max() - by.min())
    nw = next(s for s in report.segments if s.segment == "north-west")
    assert nw.false_positive_rate is not None
    assert nw.false_positive_rate.estimate == pytest.approx(by["north-west"])
    assert nw.false_positive_rate.low < by["north-west"] < nw.false_positive_rate.high
    assert report.labelled == N  # every label known 23 days before AS_OF
    flag = report.gap("flag_rate")
    assert flag.low is not None
    assert flag.low > 0


def test_no_planted_gap_has_a_large_p_value_and_the_seed_is_fixed() -> None:
    log, labels = world(EVEN, seed=3)
    (a,) = window_fairness(log, labels, "region", as_of=AS_OF)
    (b,) = window_fairness(log, labels, "region", as_of=AS_OF)
    assert a.gaps == b.gaps  # the bootstrap's seed is fixed
    gap = a.gap("false_positive_rate")
    assert gap.gap is not None
    assert gap.gap < 0.015
    # a max - min is never below 0: the interval says how large a gap noise alone makes
    assert gap.low is not None
    assert gap.low >= 0
    assert gap.high is not None
    assert gap.high < 0.03
    assert gap.p_value is not None
    assert gap.p_value > 0.05
    (c,) = window_fairness(log, labels, "region", as_of=AS_OF, seed=1)
    assert c.gap("false_positive_rate").low != gap.low


def test_only_labels_known_at_the_evaluation_time_count() -> None:
    log, labels = world(REGIONS4)
    half = T0 + timedelta(days=7) + (log["ts"].iloc[-1] - T0) / 2
    (report,) = window_fairness(log, segment_labels_as_of(labels, half), "region", as_of=half)
    assert 0 < report.labelled < N
    assert report.unlabelled == N - report.labelled
    with pytest.raises(NoDataError, match="none with a label known by"):
        window_fairness(log, segment_labels_as_of(labels, T0), "region", as_of=T0)


def segment_labels_as_of(labels: pd.DataFrame, when: datetime) -> pd.DataFrame:
    return labels[labels[schema.LABEL_AVAILABLE_AT] <= when]


def test_shadow_rows_and_other_versions() -> None:
    log, labels = world(REGIONS4)
    shadow = log.assign(variant="r1:shadow", decision="fraud")
    other = log.head(500).assign(version="4")
    reports = window_fairness(pd.concat([log, shadow, other]), labels, "region", as_of=AS_OF)
    assert [(r.version, r.labelled) for r in reports] == [("3", N), ("4", 500)]
    (alone,) = window_fairness(pd.concat([log, shadow]), labels, "region", as_of=AS_OF)
    assert alone.gaps == window_fairness(log, labels, "region", as_of=AS_OF)[0].gaps
    with pytest.raises(NoDataError, match="version 9"):
        window_fairness(log, labels, "region", as_of=AS_OF, version=9)
    with pytest.raises(NoDataError, match="no answered prediction"):
        window_fairness(shadow, labels, "region", as_of=AS_OF)
    with pytest.raises(NoDataError, match="no answered prediction"):
        window_fairness(log.iloc[:0], labels, "region", as_of=AS_OF)


def test_too_few_frauds_is_a_stated_no_data_never_nan() -> None:
    log, labels = world(REGIONS4)
    few = log.head(300)  # about 6 frauds over four regions
    (report,) = window_fairness(few, labels, "region", as_of=AS_OF)
    recall = report.gap("recall")
    assert recall.gap is None
    assert recall.reason is not None
    assert "frauds" in recall.reason
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))  # raises on a NaN
    assert next(g for g in data["gaps"] if g["metric"] == "recall")["gap"] is None
    gauges = gauges_text([report])
    assert "NaN" not in gauges
    assert 'metric="recall"' not in gauges
    assert 'mlsd_fairness_gap{by="region",metric="false_positive_rate",model="fraud",' in gauges


def test_age_bands_and_bad_input() -> None:
    log, labels = world(REGIONS4)
    (report,) = window_fairness(log, labels, "age_band", as_of=AS_OF)
    assert [s.segment for s in report.segments] == ["18-29", "30-44", "45-64", "65+"]
    gap = report.gap("false_positive_rate")
    assert gap.gap is not None
    assert gap.low is not None
    assert gap.low < 0.01
    with pytest.raises(ValidationError, match="--by: expected one of region, age_band"):
        window_fairness(log, labels, "income", as_of=AS_OF)
    odd = labels.assign(REGION=labels[schema.REGION].where(labels[schema.CUSTOMER_ID] != 3))
    (partial,) = window_fairness(log, odd, "region", as_of=AS_OF)
    left_out = int((labels[schema.CUSTOMER_ID] == 3).sum())
    assert partial.notes == [f"{left_out:,} labelled rows have a customer without a known "
                             "segment: left out"]  # fmt: skip
    assert sum(s.labelled for s in partial.segments) == N - left_out
    with pytest.raises(NoDataError, match="no segment columns"):
        segment_labels(labels, labels[[schema.CUSTOMER_ID]], AS_OF)


def test_fairlearn_on_weighted_cells_equals_the_rates_per_row() -> None:
    from fairlearn.metrics import MetricFrame, false_positive_rate

    from mlsd.monitoring.fairness import _metric_frame

    cells = np.array([[90, 10, 3, 7], [50, 0, 0, 2], [0, 0, 0, 0], [5, 5, 0, 0]])
    names = ["a", "b", "c", "d"]
    rates = _metric_frame(cells, names)
    assert set(rates) == {"a", "b", "d"}  # a segment without rows is absent, not NaN
    assert rates["a"] == pytest.approx(
        {"false_positive_rate": 0.1, "recall": 0.7, "flag_rate": 17 / 110}
    )
    assert rates["b"]["recall"] == 1.0
    assert rates["d"]["false_positive_rate"] == 0.5
    # one row per transaction, as Fairlearn is usually called: the same figure
    y_true = np.repeat([0, 0, 1, 1], cells[0])
    y_pred = np.repeat([0, 1, 0, 1], cells[0])
    per_row = MetricFrame(metrics=false_positive_rate, y_true=y_true, y_pred=y_pred,
                          sensitive_features=np.zeros(len(y_true)))  # fmt: skip
    assert float(per_row.overall) == pytest.approx(rates["a"]["false_positive_rate"])


def test_without_fairlearn_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from mlsd.errors import UnavailableError

    monkeypatch.setitem(sys.modules, "fairlearn.metrics", None)  # import raises
    log, labels = world(REGIONS4)
    with pytest.raises(UnavailableError, match=r"pip install 'mlsd\[monitoring\]'"):
        window_fairness(log.head(100), labels, "region", as_of=AS_OF)
