"""`open_reader`: reads what writers stored, and starts no thread and writes no file."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlsd.errors import ConfigError
from mlsd.predlog import (
    ParquetPredictionReader,
    PredictionLogReader,
    PredictionRecord,
    make_prediction_log,
    open_reader,
)
from mlsd.predlog.demo import demo_step
from mlsd.settings import Settings

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def record(i: int) -> PredictionRecord:
    return PredictionRecord(
        f"r{i}", T0 + timedelta(seconds=i), "fraud", "1", [float(i)], 0.5, "legit", 0.9, 1.0,
        feature_names=("f0",),
    )  # fmt: skip


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def test_reading_starts_no_thread_and_writes_no_file(home: Path) -> None:
    settings = Settings(home=home)
    writer = make_prediction_log(settings)
    writer.append([record(i) for i in range(5)])
    writer.close()
    threads, files = set(threading.enumerate()), tree(home)

    reader = open_reader(settings)
    assert isinstance(reader, PredictionLogReader)
    frame = reader.read(start=T0 + timedelta(seconds=1))
    reader.close()
    figures = demo_step(settings, since=T0)

    assert frame["request_id"].tolist() == ["r1", "r2", "r3", "r4"]
    assert figures["predictions"] == 5
    assert set(threading.enumerate()) - threads == set(), "no thread started"
    assert tree(home) == files


def test_a_reader_of_no_log_reads_nothing_and_creates_nothing(home: Path) -> None:
    home.mkdir(parents=True)
    reader = open_reader(Settings(home=home))
    assert isinstance(reader, ParquetPredictionReader)
    assert reader.read().empty
    assert reader.files() == []
    assert list(home.iterdir()) == []


def test_a_reader_sees_what_a_live_writer_stored_not_its_buffer(home: Path) -> None:
    settings = Settings(home=home, prediction_log_flush_seconds=60)
    writer = make_prediction_log(settings)
    try:
        seq = writer.append([record(1)])
        assert open_reader(settings).read().empty
        writer.flush()
        assert writer.durable_seq == seq
        assert open_reader(settings).read()["request_id"].tolist() == ["r1"]
    finally:
        writer.close()


def test_an_unsupported_url_names_the_setting(home: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        open_reader(Settings(home=home, prediction_log="mysql://x"))
    assert caught.value.field == "prediction_log"


@pytest.mark.postgres
def test_the_postgres_reader_creates_no_table(
    home: Path, postgres_url: str, postgres_schema: str
) -> None:
    import psycopg

    settings = Settings(home=home, prediction_log=f"{postgres_url}?schema={postgres_schema}")
    threads = set(threading.enumerate())
    assert open_reader(settings).read().empty
    assert set(threading.enumerate()) - threads == set(), "no thread started"
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (postgres_schema,),
        ).fetchall()
    assert tables == []
    assert not home.exists()
    writer = make_prediction_log(settings)
    writer.append([record(i) for i in range(3)])
    writer.close()
    assert open_reader(settings).read()["request_id"].tolist() == ["r0", "r1", "r2"]
