"""Parity between online and offline by replay, on every backend; skew reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlsd.features import HANDBOOK_FEATURES
from mlsd.features.handbook import CUSTOMER_VIEW
from mlsd.features.store import FeatureStore


def test_replay_parity_is_total(built: FeatureStore) -> None:
    report = built.parity(checkpoints=3, sample=40)
    assert len(report.checkpoints) == 3
    assert report.compared == 3 * 40 * 6 * 2
    assert report.mismatches == 0, report.examples
    assert report.agreement == 1.0
    # the scratch store is gone and the real one untouched
    assert (
        built.online.watermark("customer_spending", built.view_versions()["customer_spending"])
        is None
    )
    assert not list(built.settings.path("features").glob("parity-*"))


def test_parity_detects_a_store_materialized_past_the_checkpoint(
    built: FeatureStore, transactions: pd.DataFrame
) -> None:
    from mlsd.features.consistency import replay_parity
    from mlsd.features.online import SqliteOnlineStore

    scratch = SqliteOnlineStore(built.settings.path("features", "scratch.sqlite"))
    built.materialize(online=scratch)  # holds the final state
    mid = transactions["TX_DATETIME"].iloc[len(transactions) // 2].to_pydatetime()
    report = replay_parity(built, scratch, end=mid, checkpoints=1, sample=30, clear=False)
    scratch.close()
    assert report.mismatches > 0
    assert report.agreement < 1.0
    assert report.examples[0]["online"] != report.examples[0]["offline"]


def test_skew_report(built: FeatureStore, transactions: pd.DataFrame) -> None:
    logged = built.get_training_set(transactions.tail(200), list(HANDBOOK_FEATURES))
    logged.loc[logged.index[0], "CUSTOMER_ID"] = 10_000_000  # unknown: NaN on both sides
    logged.loc[logged.index[0], list(CUSTOMER_VIEW.features)] = np.nan
    for col in HANDBOOK_FEATURES:
        logged[col] = logged[col].astype(np.float32)  # serving logs float32
    report = built.skew(logged, list(HANDBOOK_FEATURES))
    assert report.rows == 200
    assert set(report.mismatch_rate.values()) == {0.0}
    skewed = logged.copy()
    skewed.loc[skewed.index[:50], "TERMINAL_ID_NB_TX_7DAY_WINDOW"] += 1
    report = built.skew(skewed, list(HANDBOOK_FEATURES))
    assert report.mismatch_rate["TERMINAL_ID_NB_TX_7DAY_WINDOW"] == 0.25
    assert report.max_abs_diff["TERMINAL_ID_NB_TX_7DAY_WINDOW"] == 1.0
    assert report.mismatch_rate["TX_AMOUNT"] == 0.0


def test_live_parity_checks_the_store_serving_reads(built: FeatureStore) -> None:
    report = built.live_parity(sample=40)
    assert report.problems
    assert "never materialized" in report.problems[0]
    assert report.mismatches > 0  # serving would read nothing
    assert not report.ok
    assert "online.sqlite" in report.store or "Redis" in report.store
    built.materialize()
    report = built.live_parity(sample=40)
    assert report.ok, (report.problems, report.examples)
    assert report.compared == 40 * 6 * 2


def test_live_parity_sees_another_datasets_rows(built: FeatureStore, tmp_path: Path) -> None:
    """The trap: the replay checked a scratch store and said 100 % while serving read
    another dataset's values."""
    from mlsd.features.testing import synthetic_transactions, write_transactions

    built.materialize()
    other = synthetic_transactions(n_customers=50, n_terminals=80, days=30, seed=11)
    built.build(write_transactions(other, tmp_path / "other"))
    assert built.parity(checkpoints=1, sample=40).agreement == 1.0  # the scratch replay
    report = built.live_parity(sample=40)
    assert not report.ok
    assert "materialized from" in report.problems[0]
    assert report.mismatches > 0
    built.materialize()  # rebuilds the online store from the new dataset
    assert built.live_parity(sample=40).ok


def test_live_parity_compares_pushed_rows_at_their_own_time(
    built: FeatureStore, transactions: pd.DataFrame
) -> None:
    from datetime import timedelta

    mid = transactions["TX_DATETIME"].iloc[len(transactions) // 2].to_pydatetime()
    built.materialize(end=mid)
    assert built.live_parity(sample=30).ok
    view = CUSTOMER_VIEW
    row = {"CUSTOMER_ID": [3], "event_timestamp": [mid + timedelta(hours=1)]}
    frame = pd.DataFrame(row | {f: [123.0] for f in view.features})
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    built.push(view.name, frame, to="both")
    assert built.live_parity(sample=50).ok
    built.push(view.name, frame.assign(event_timestamp=frame["event_timestamp"] + timedelta(1)))
    report = built.live_parity(sample=50)  # online only: offline does not know it
    assert report.mismatches > 0
