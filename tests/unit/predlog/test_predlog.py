"""Prediction log details: failed writes keep records, the buffer cap, the factory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from mlsd.errors import ConfigError, UnavailableError, ValidationError
from mlsd.predlog import (
    ParquetPredictionLog,
    PredictionRecord,
    make_prediction_log,
    split_schema,
)
from mlsd.settings import Settings


def record(i: int) -> PredictionRecord:
    return PredictionRecord(
        request_id=f"r{i}",
        ts=datetime(2026, 5, 1, 12, tzinfo=UTC),
        model="fraud",
        version="1",
        features=[float(i)],
        score=0.5,
        decision="approve",
        threshold=0.9,
        latency_ms=1.0,
    )


def test_a_failed_write_keeps_the_records_for_the_next_try(tmp_path: Path) -> None:
    root = tmp_path / "predictions"
    plog = ParquetPredictionLog(root, flush_seconds=60)
    plog.append([record(1), record(2)])
    (root / "date=2026-05-01").write_text("a file where a folder should be")
    with pytest.raises(UnavailableError, match="cannot write"):
        plog.flush()
    stats = plog.stats()
    assert (stats.buffered, stats.written, stats.write_errors) == (2, 0, 1)
    (root / "date=2026-05-01").unlink()
    assert plog.flush() == 2
    plog.close()
    assert plog.read()["request_id"].tolist() == ["r1", "r2"]


def test_no_partial_files_are_left_or_read(tmp_path: Path) -> None:
    # compaction off: its thread may lock the (past) day folder while we list it
    plog = ParquetPredictionLog(tmp_path, flush_seconds=60, compact_every_s=None)
    plog.append([record(i) for i in range(10)])
    plog.close()
    files = sorted(p.name for p in (tmp_path / "date=2026-05-01").iterdir())
    assert len(files) == 1
    assert files[0].startswith("part-")
    assert files[0].endswith(".parquet")


def test_buffer_cap_drops_and_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plog = ParquetPredictionLog(tmp_path, flush_seconds=60, flush_records=5, max_buffered=5)
    monkeypatch.setattr(plog._wake, "set", lambda: None)  # keep the flusher asleep
    plog.append([record(i) for i in range(8)])
    assert plog.stats().buffered == 5
    assert plog.stats().dropped == 3
    monkeypatch.undo()
    plog.close()
    assert len(plog.read()) == 5


def test_bad_buffer_configuration(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flush_records"):
        ParquetPredictionLog(tmp_path, flush_records=10, max_buffered=5)


def test_feature_names_must_match_values() -> None:
    bad = PredictionRecord(
        "r", datetime.now(UTC), "m", "1", [1.0, 2.0], 0.1, "approve", 0.5, 1.0,
        feature_names=["only_one"],
    )  # fmt: skip
    with pytest.raises(ValidationError) as info:
        bad.feature_dict()
    assert info.value.field == "feature_names"


def test_unnamed_sequence_features_get_positional_names() -> None:
    rec = PredictionRecord("r", datetime.now(UTC), "m", "1", [1.0, None], 0.1, "a", 0.5, 1.0)
    assert rec.feature_dict() == {"f0": 1.0, "f1": None}


def test_factory_default_is_parquet_in_home(tmp_path: Path) -> None:
    plog = make_prediction_log(Settings(home=tmp_path))
    try:
        assert isinstance(plog, ParquetPredictionLog)
        assert plog.root == tmp_path / "predictions"
    finally:
        plog.close()


def test_factory_refuses_unknown_urls() -> None:
    with pytest.raises(ConfigError) as info:
        make_prediction_log(Settings(prediction_log="mysql://x"))
    assert info.value.field == "prediction_log"


def test_split_schema() -> None:
    assert split_schema("postgresql://u@h:5432/db?schema=audit&sslmode=disable") == (
        "postgresql://u@h:5432/db?sslmode=disable",
        "audit",
    )
    assert split_schema("postgresql://u@h/db") == ("postgresql://u@h/db", "public")


def test_unreachable_postgres_is_unavailable() -> None:
    from mlsd.predlog.postgres import PostgresPredictionLog

    with pytest.raises(UnavailableError, match="unreachable"):
        PostgresPredictionLog("postgresql://postgres@127.0.0.1:1/test", connect_timeout_s=1)


def test_summary_doctest_and_empty() -> None:
    import doctest

    from mlsd.predlog import summarize, summary

    result = doctest.testmod(summary)
    assert result.attempted > 0
    assert result.failed == 0
    assert summarize(pd.DataFrame()).predictions == 0


def test_demo_step_reads_what_was_logged(tmp_path: Path) -> None:
    from mlsd.predlog.demo import demo_step

    settings = Settings(home=tmp_path)
    plog = make_prediction_log(settings)
    plog.append([record(i) for i in range(5)])
    plog.close()
    figures = demo_step(settings)
    assert figures["predictions"] == 5
    assert figures["by_version"] == {"fraud/1": 5}
    assert figures["fraud_share"] == 0.0


def test_outcomes_count_each_transaction_once_and_ignore_other_endpoints() -> None:
    from mlsd.predlog.summary import outcomes

    t = pd.Timestamp("2018-07-10 12:00", tz="UTC")
    log = pd.DataFrame(
        {
            "ts": [t, t + pd.Timedelta(seconds=1), t, t, t],
            "endpoint": ["score", "score", "score", "v2", "score"],
            "transaction_id": [1, 1, 2, None, 99],  # 1 retried, 99 not replayed
            "score": [0.9, 0.1, 0.2, 0.9, 0.9],
            "threshold": [0.5] * 5,
            "decision": ["fraud", "legit", "legit", "fraud", "fraud"],
            "latency_ms": [1.0] * 5,
        }
    )
    labels = pd.DataFrame(
        {
            "TRANSACTION_ID": [1, 2],
            "CUSTOMER_ID": [5, 6],
            "TX_DATETIME": [t, t + pd.Timedelta(days=1)],
            "TX_AMOUNT": [10.0, 20.0],
            "TX_FRAUD": [0, 1],
        }
    )
    o = outcomes(log, labels, alert_budget=3)
    assert (o.scored, o.unlabelled) == (2, 1)
    assert (o.caught, o.false_alarms, o.missed) == (0, 1, 1)  # the first record of 1 counts
    assert (o.precision, o.recall) == (0.0, 0.0)
    assert (o.caught_eur, o.missed_eur) == (0.0, 20.0)
    assert [(d.day, d.cards_flagged, d.cards_compromised) for d in o.days] == [
        ("2018-07-10", 1, 0),
        ("2018-07-11", 0, 1),
    ]
    empty = outcomes(log.iloc[:0], labels)
    assert (empty.scored, empty.precision, empty.recall, empty.days) == (0, None, None, [])
