"""Materialization: incremental runs equal one run; a failed run changes nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlsd.errors import IntegrityError, ValidationError
from mlsd.features.online import Lookup, OnlineStore
from mlsd.features.store import FeatureStore


def snapshot(store: FeatureStore, online: OnlineStore | None = None) -> dict[Lookup, object]:
    """Every online row of the store's views for entity keys 0..199."""
    online = online or store.online
    lookups = [(r.view.name, r.version, k) for r in store.batch_requests() for k in range(200)]
    recs = online.read(lookups)
    return {
        lk: (r.event_us, r.created_us, tuple(r.values))
        for lk, r in zip(lookups, recs, strict=True)
        if r is not None
    }


def test_incremental_equals_one_run(
    built: FeatureStore, transactions: pd.DataFrame, tmp_path: Path
) -> None:
    from mlsd.features.online import SqliteOnlineStore

    end = transactions["TX_DATETIME"].iloc[-1].to_pydatetime()
    for cut in (end - timedelta(days=25), end - timedelta(days=11, hours=5), end):
        report = built.materialize(end=cut, chunk_days=2.5)
        assert report.watermarks["customer_spending"] == cut
    again = built.materialize(end=end)
    assert again.rows_written == {"customer_spending": 0, "terminal_risk": 0}
    reference = SqliteOnlineStore(tmp_path / "one-run.sqlite")
    built.materialize(end=end, online=reference, chunk_days=100)
    assert snapshot(built) == snapshot(built, reference)
    assert len(snapshot(built)) > 100


def test_failed_materialization_leaves_the_store_as_it_was(
    built: FeatureStore, transactions: pd.DataFrame
) -> None:
    mid = transactions["TX_DATETIME"].iloc[len(transactions) // 2].to_pydatetime()
    built.materialize(end=mid)
    before = snapshot(built)
    marks = {
        r.view.name: built.online.watermark(r.view.name, r.version) for r in built.batch_requests()
    }
    with pytest.raises(ValidationError, match="timezone-aware"):
        built.materialize(end=mid.replace(tzinfo=None) + timedelta(days=5))
    with pytest.raises(ValidationError):
        built.materialize(end=mid + timedelta(days=5), chunk_days=-1)
    # corrupt one view's table: the run must fail before writing anything
    terminal = next(r for r in built.batch_requests() if r.view.name == "terminal_risk")
    for part in built.offline.parts("terminal_risk", terminal.version):
        part.write_bytes(b"not parquet")
    with pytest.raises(IntegrityError, match="unreadable"):
        built.materialize(end=mid + timedelta(days=5))
    assert snapshot(built) == before
    after = {
        r.view.name: built.online.watermark(r.view.name, r.version) for r in built.batch_requests()
    }
    assert after == marks


@pytest.fixture
def other_dataset(tmp_path: Path) -> Path:
    """Another dataset over the same entity keys, ending ten days earlier."""
    from mlsd.features.testing import synthetic_transactions, write_transactions

    frame = synthetic_transactions(n_customers=50, n_terminals=80, days=30, seed=11)
    return write_transactions(frame, tmp_path / "other")


def test_a_switched_dataset_is_rematerialized_from_the_start(
    built: FeatureStore, dataset: Path, other_dataset: Path, tmp_path: Path
) -> None:
    """The first hour's trap: the watermark of dataset A skipped every row of dataset B,
    and A's later rows won over B's under newer-wins."""
    from mlsd.features.online import SqliteOnlineStore

    first = built.materialize()
    assert first.rebuilt is None
    assert str(dataset.resolve()) in first.sources["customer_spending"]
    built.build(other_dataset)
    again = built.materialize()
    assert again.rebuilt is not None
    assert str(dataset.resolve()) in again.rebuilt
    assert str(other_dataset.resolve()) in again.rebuilt
    assert again.rows_written["customer_spending"] > 0
    reference = SqliteOnlineStore(tmp_path / "fresh.sqlite")
    built.materialize(online=reference)
    assert snapshot(built) == snapshot(built, reference)
    assert built.materialize().rebuilt is None  # now it is B's


def test_a_switch_can_be_refused_instead(built: FeatureStore, other_dataset: Path) -> None:
    from mlsd.errors import ConflictError

    built.materialize()
    before = snapshot(built)
    built.build(other_dataset)
    with pytest.raises(ConflictError, match="materialized from") as info:
        built.materialize(on_switch="refuse")
    assert info.value.field == "online_store"
    assert snapshot(built) == before


def test_rebuilding_the_same_dataset_keeps_the_watermark(
    built: FeatureStore, dataset: Path
) -> None:
    built.materialize()
    built.build(dataset)  # `mlsd train` rebuilds the tables of the same dataset
    again = built.materialize()
    assert again.rebuilt is None
    assert again.rows_written == {"customer_spending": 0, "terminal_risk": 0}


def test_a_watermark_without_a_recorded_source_is_not_trusted(built: FeatureStore) -> None:
    """Online stores materialized before sources were recorded: rebuilt once."""
    built.materialize()
    for req in built.batch_requests():
        name = f"{req.view.name}:{req.version}"
        built.online.write([], sources={name: "elsewhere#sha256:0"})
    report = built.materialize()
    assert report.rebuilt is not None
    assert "elsewhere" in report.rebuilt
    assert report.rows_written["customer_spending"] > 0
