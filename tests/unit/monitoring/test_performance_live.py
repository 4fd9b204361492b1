"""The label-table label source, the folder detection of `--labels`, and the background
performance monitor's states (no predictions, unknown version, a failing read)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlsd.data import schema
from mlsd.errors import NotFoundError, UnavailableError
from mlsd.monitoring.label_table import LabelRow, LabelTable
from mlsd.monitoring.performance import (
    LABEL_COLUMNS,
    LabelTableLabels,
    RegistryReferences,
    labels_kind,
    open_labels,
)
from mlsd.monitoring.performance_live import PerformanceMonitor
from mlsd.predlog import ParquetPredictionLog, PredictionRecord
from mlsd.registry import Registry
from mlsd.settings import Settings
from tests.unit.monitoring.perf_helpers import register_calibrated, stream

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _label(tid: int, label: int, at: datetime) -> LabelRow:
    return LabelRow(tid, label, label_time=at, event_time=at - timedelta(days=1))


def test_label_table_source_maps_the_columns_and_sees_new_parts(tmp_path: Path) -> None:
    table = LabelTable(tmp_path / "labels")
    table.write([_label(1, 0, NOW), _label(2, 1, NOW), _label(3, 0, NOW)])
    source = LabelTableLabels(tmp_path / "labels")
    got = source.labels(np.array([2, 3, 99]))
    assert list(got.columns) == list(LABEL_COLUMNS)
    assert got[schema.TRANSACTION_ID].tolist() == [2, 3]
    assert got[schema.TX_FRAUD].tolist() == [1, 0]
    assert (got[schema.LABEL_AVAILABLE_AT] == pd.Timestamp(NOW)).all()
    assert got[schema.TX_AMOUNT].isna().all()  # the table holds no amount
    table.write([_label(99, 1, NOW + timedelta(hours=1))])  # a label lands later
    assert source.labels(np.array([99]))[schema.TX_FRAUD].tolist() == [1]
    table.compact()
    assert source.labels(np.array([1, 2, 3, 99]))[schema.TX_FRAUD].tolist() == [0, 1, 0, 1]


def test_labels_folder_detection(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert labels_kind(empty) == "label_table"  # no label landed yet
    table = tmp_path / "table"
    LabelTable(table).write([_label(1, 0, NOW)])
    assert isinstance(open_labels(table), LabelTableLabels)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / schema.MANIFEST_FILE).write_text("{}")
    assert labels_kind(dataset) == "dataset"
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("x")
    for bad in (junk, tmp_path / "missing", junk / "notes.txt"):
        with pytest.raises(NotFoundError, match="--labels") as caught:
            labels_kind(bad)
        assert caught.value.field == "labels"


def _records(
    n: int, version: int, scores: np.ndarray, amounts: np.ndarray
) -> list[PredictionRecord]:
    return [
        PredictionRecord(
            request_id=f"r{i}",
            ts=NOW - timedelta(hours=2) + timedelta(seconds=i),
            model="fraud",
            version=str(version),
            features={"TX_AMOUNT": float(amounts[i]), "f1": 0.0},
            score=float(scores[i]),
            decision="fraud" if scores[i] >= 0.5 else "legit",
            threshold=0.5,
            latency_ms=1.0,
            variant="champion",
            transaction_id=i,
            customer_id=i % 7,
            terminal_id=0,
            tx_time=NOW - timedelta(hours=2) + timedelta(seconds=i),
        )
        for i in range(n)
    ]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry.open(Settings(home=tmp_path))
    register_calibrated(reg, stream(3000, seed=1))
    yield reg
    reg.close()


def test_monitor_over_the_label_table_takes_the_amount_from_the_log(
    tmp_path: Path, registry: Registry
) -> None:
    n = 200
    rng = np.random.default_rng(3)
    scores = rng.uniform(size=n)
    amounts = np.round(rng.uniform(5, 500, size=n), 2)
    fraud = (scores > 0.8).astype(int)
    log = ParquetPredictionLog(tmp_path / "log", compact_every_s=None, journal=False)
    log.append(_records(n, 1, scores, amounts))
    table = LabelTable(tmp_path / "labels")
    # labels of the first 150 landed an hour ago, the rest land tomorrow
    table.write([_label(i, int(fraud[i]), NOW - timedelta(hours=1)) for i in range(150)])
    table.write([_label(i, int(fraud[i]), NOW + timedelta(days=1)) for i in range(150, n)])
    monitor = PerformanceMonitor(
        RegistryReferences(registry), log, LabelTableLabels(tmp_path / "labels"),
        window=timedelta(days=1), clock=lambda: NOW,
    )  # fmt: skip
    assert monitor.refresh() == "ok"
    figures = monitor.figures()
    (row,) = figures["versions"]
    assert (row["model"], row["version"], row["variant"]) == ("fraud", 1, "champion")
    assert row["n_predictions"] == n
    assert row["n_labelled"] == 150
    assert row["label_coverage"] == pytest.approx(0.75)
    assert row["auc"] == pytest.approx(roc_auc_score(fraud[:150], scores[:150]))
    blocked = (fraud[:150] == 1) & (scores[:150] >= 0.5)
    assert row["fraud_eur"] == pytest.approx(amounts[:150][fraud[:150] == 1].sum(), abs=0.01)
    assert row["fraud_eur_blocked"] == pytest.approx(amounts[:150][blocked].sum(), abs=0.01)
    assert row["estimate_state"] == "ok"
    assert row["estimated_auc"] is not None
    assert figures["to"] == NOW.isoformat()
    log.close()


def test_monitor_states_never_raise(
    tmp_path: Path, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    log = ParquetPredictionLog(tmp_path / "log", compact_every_s=None, journal=False)
    labels = LabelTableLabels(tmp_path / "labels")  # the consumer has not written yet
    monitor = PerformanceMonitor(RegistryReferences(registry), log, labels, clock=lambda: NOW)
    assert monitor.refresh() == "no_predictions"
    assert monitor.figures()["versions"] == []
    scores = np.linspace(0.0, 1.0, 10)
    log.append(_records(10, 7, scores, np.ones(10)))  # a version the registry lacks
    assert monitor.refresh() == "ok"
    (row,) = monitor.figures()["versions"]
    assert row["state"] == "no_labels"
    assert row["auc"] is None
    assert row["estimate_state"] == "unknown_version"
    assert row["estimated_auc"] is None
    assert row["label_coverage"] == 0.0
    assert row["fraud_eur"] == 0.0

    class Down:
        def read(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
            raise UnavailableError("the log's store is down")

    monitor.reader = Down()
    with caplog.at_level(logging.INFO, logger="mlsd.monitoring.performance_live"):
        assert monitor.refresh() == "error"
        assert monitor.refresh() == "error"
    assert sum("store is down" in r.getMessage() for r in caplog.records) == 1  # once
    assert monitor.figures()["message"] == "the log's store is down"
    assert monitor.figures()["versions"]  # the last figures stay
    log.close()


def test_monitor_thread_refreshes_and_stops(tmp_path: Path, registry: Registry) -> None:
    log = ParquetPredictionLog(tmp_path / "log", compact_every_s=None, journal=False)

    class Broken:
        def labels(self, ids: np.ndarray) -> pd.DataFrame:
            raise RuntimeError("a bug")

    log.append(_records(5, 1, np.linspace(0, 1, 5), np.ones(5)))
    monitor = PerformanceMonitor(
        RegistryReferences(registry), log, Broken(), every_s=3600.0, clock=lambda: NOW
    )
    monitor.start()
    monitor.close()  # joins: the first refresh has run, and failed without killing anything
    assert monitor.refreshes == 1
    assert monitor.state == "error"
    assert "RuntimeError: a bug" in (monitor.message or "")
    log.close()
