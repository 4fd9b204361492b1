"""One suite for every prediction log backend: Parquet files and PostgreSQL."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlsd.errors import UnavailableError, ValidationError
from mlsd.predlog import (
    COLUMNS,
    BufferedLog,
    ParquetPredictionLog,
    PredictionLog,
    PredictionRecord,
    features_frame,
    journal_folder,
    make_prediction_log,
)
from mlsd.settings import Settings

Factory = Callable[..., BufferedLog]
T0 = datetime(2026, 4, 1, 23, 59, 58, tzinfo=UTC)


def record(i: int, ts: datetime = T0, **overrides: object) -> PredictionRecord:
    fields: dict[str, object] = {
        "request_id": f"req-{i}",
        "ts": ts + timedelta(milliseconds=i),
        "model": "fraud",
        "version": "3",
        "features": {"amount": float(i), "tx_count_1d": 2.0, "risk_7d": None},
        "score": i / 1000,
        "decision": "block" if i % 2 else "approve",
        "threshold": 0.5,
        "latency_ms": 1.25,
        "degraded": i % 3 == 0,
    }
    fields.update(overrides)
    return PredictionRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture(
    params=[
        "parquet",
        "parquet-process",  # MLSD_PREDICTION_LOG_WRITER=process: a child stores the batches
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    made: list[BufferedLog] = []

    def factory(flush_seconds: float = 60.0, flush_records: int = 10_000) -> BufferedLog:
        url = ""
        if request.param == "postgres":
            url = f"{request.getfixturevalue('postgres_url')}?schema="
            url += request.getfixturevalue("postgres_schema")
        settings = Settings(
            home=tmp_path,
            prediction_log=url,
            prediction_log_flush_seconds=flush_seconds,
            prediction_log_flush_records=flush_records,
            prediction_log_writer="process" if request.param == "parquet-process" else "thread",
        )
        plog = make_prediction_log(settings)
        assert isinstance(plog, BufferedLog)
        made.append(plog)
        return plog

    yield factory
    for plog in made:
        plog.close()


def test_is_a_prediction_log(make: Factory) -> None:
    assert isinstance(make(), PredictionLog)


def test_close_writes_everything_appended(make: Factory) -> None:
    plog = make()
    plog.append([record(i) for i in range(500)])
    plog.append([record(i) for i in range(500, 1000)])
    assert plog.stats().buffered == 1000
    plog.close()
    frame = plog.read()
    assert len(frame) == 1000
    assert list(frame.columns) == list(COLUMNS)
    assert frame["request_id"].tolist() == [f"req-{i}" for i in range(1000)]
    assert plog.stats().written == 1000


def test_round_trip_of_every_field(make: Factory) -> None:
    plog = make()
    plog.append([record(7, variant="canary", endpoint="v2-infer")])
    row = plog.read().iloc[0]
    assert row["ts"] == T0 + timedelta(milliseconds=7)
    assert str(row["ts"].tz) == "UTC"
    assert (row["model"], row["version"], row["decision"]) == ("fraud", "3", "block")
    assert row["score"] == 0.007
    assert row["threshold"] == 0.5
    assert row["latency_ms"] == 1.25
    assert not row["degraded"]
    assert (row["endpoint"], row["variant"]) == ("v2-infer", "canary")
    assert row["features"] == {"amount": 7.0, "tx_count_1d": 2.0, "risk_7d": None}
    assert pd.isna(row["transaction_id"])
    assert pd.isna(row["tx_time"])


def test_round_trip_of_the_transaction_keys(make: Factory) -> None:
    plog = make()
    when = T0 - timedelta(seconds=3)
    plog.append([record(1, transaction_id=11, customer_id=22, terminal_id=33, tx_time=when)])
    row = plog.read().iloc[0]
    assert (row["transaction_id"], row["customer_id"], row["terminal_id"]) == (11, 22, 33)
    assert row["tx_time"] == when


def test_sequence_features_with_names_and_non_finite_values(make: Factory) -> None:
    plog = make()
    plog.append([record(1, features=[1.5, math.nan, math.inf], feature_names=["a", "b", "c"])])
    features = features_frame(plog.read())
    assert features.columns.tolist() == ["a", "b", "c"]
    assert features.iloc[0]["a"] == 1.5
    assert features.iloc[0][["b", "c"]].isna().all()


def test_read_by_time_range_across_days(make: Factory) -> None:
    plog = make()
    plog.append([record(i) for i in range(4000)])  # 23:59:58 .. 00:00:02 the next day
    midnight = datetime(2026, 4, 2, tzinfo=UTC)
    before = plog.read(end=midnight)
    after = plog.read(start=midnight)
    assert len(before) == 2000
    assert len(after) == 2000
    assert (before["ts"] < midnight).all()
    window = plog.read(start=T0 + timedelta(seconds=1), end=T0 + timedelta(seconds=3))
    assert len(window) == 2000


def test_timer_flushes_in_the_background(make: Factory) -> None:
    plog = make(flush_seconds=0.05)
    plog.append([record(1)])
    deadline = time.monotonic() + 5
    while plog.stats().written == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert plog.stats().written == 1


def test_size_flushes_in_the_background(make: Factory) -> None:
    plog = make(flush_records=100)
    plog.append([record(i) for i in range(150)])
    deadline = time.monotonic() + 5
    while plog.stats().written < 150 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert plog.stats().written == 150


def test_appends_after_close_are_refused(make: Factory) -> None:
    plog = make()
    plog.close()
    with pytest.raises(UnavailableError, match="closed"):
        plog.append([record(1)])


def test_naive_timestamps_are_refused_at_append(make: Factory) -> None:
    plog = make()
    with pytest.raises(ValidationError, match="timezone-aware") as info:
        plog.append([record(1), record(2, ts=datetime(2026, 1, 1))])
    assert info.value.field == "ts"
    assert plog.stats().buffered == 0


def test_a_malformed_record_is_dropped_not_retried_forever(make: Factory) -> None:
    plog = make()
    plog.append([record(1), record(2, features=[1.0, 2.0], feature_names=["a"]), record(3)])
    assert plog.flush() == 2
    assert plog.stats().dropped == 1
    assert plog.read()["request_id"].tolist() == ["req-1", "req-3"]


@pytest.mark.parametrize(
    "bad",
    [
        {"features": {"amount": "lots"}},
        {"score": "high"},
        {"latency_ms": None},
    ],
)
def test_each_malformed_record_is_dropped_alone(make: Factory, bad: dict[str, object]) -> None:
    plog = make()
    plog.append([record(1), record(2, **bad), record(3)])
    plog.flush()
    assert plog.read()["request_id"].tolist() == ["req-1", "req-3"]
    assert plog.stats().dropped == 1


def test_ids_and_names_are_stored_as_text(make: Factory) -> None:
    plog = make()
    plog.append([record(1, request_id=12345, version=7)])
    row = plog.read().iloc[0]
    assert (row["request_id"], row["version"]) == ("12345", "7")


@pytest.mark.postgres
def test_factory_opens_postgres_in_the_urls_schema(
    postgres_url: str, postgres_schema: str, tmp_path: Path
) -> None:
    import psycopg

    from mlsd.predlog import journal_folder

    url = f"{postgres_url}?schema={postgres_schema}"
    settings = Settings(home=tmp_path, prediction_log=url)
    plog = make_prediction_log(settings)
    assert journal_folder(settings).is_relative_to(tmp_path / "predlog-journal")
    assert any(journal_folder(settings).glob("*.lock"))
    plog.append([record(1)])
    plog.close()
    with psycopg.connect(postgres_url) as conn:
        count = conn.execute(f'SELECT count(*) FROM "{postgres_schema}".predictions').fetchone()
    assert count == (1,)


KILLED_WRITER = """
import os, signal, sys
from datetime import UTC, datetime, timedelta
from mlsd.predlog import ParquetPredictionLog, PredictionRecord
from mlsd.predlog.postgres import PostgresPredictionLog

backend, where, schema, journal, n = sys.argv[1:6]
if backend == "parquet":
    plog = ParquetPredictionLog(where, flush_seconds=60, compact_every_s=None)
else:
    plog = PostgresPredictionLog(where, schema, flush_seconds=60, journal=journal)
t0 = datetime(2026, 4, 1, 23, 59, 58, tzinfo=UTC)
names = ("amount", "risk")
for i in range(int(n)):
    plog.append([PredictionRecord(
        f"req-{i}", t0 + timedelta(milliseconds=i), "fraud", "3", [float(i), None], 0.1,
        "legit", 0.5, 1.0, False, names, "score", "", i, 1, 2, t0,
    )])
    if i == int(n) // 2:
        plog.flush()  # half stored, half only in the journal
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writers_records_are_replayed_once(
    make: Factory, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    probe = make()  # the backend's location, and its schema created
    probe.close()
    if isinstance(probe, ParquetPredictionLog):
        args = ["parquet", str(probe.root), "", ""]
    else:
        url, schema = (
            request.getfixturevalue("postgres_url"),
            request.getfixturevalue("postgres_schema"),
        )
        journal = journal_folder(Settings(home=tmp_path, prediction_log=f"{url}?schema={schema}"))
        args = ["postgres", url, schema, str(journal)]
    n = 3000  # 23:59:58 .. 00:00:01: the journal spans midnight
    child = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, *args, str(n)], capture_output=True, timeout=120
    )
    assert child.returncode == -9, child.stderr.decode()
    assert len(probe.reader.read()) == n // 2 + 1, "the child stored half before its kill"  # type: ignore[attr-defined]
    plog = make()
    assert plog.stats().replayed == n - (n // 2 + 1)
    frame = plog.read()
    assert len(frame) == n
    assert frame["request_id"].is_unique
    assert sorted(frame["request_id"]) == sorted(f"req-{i}" for i in range(n))
    row = frame.set_index("request_id").loc["req-2999"]
    assert row["features"] == {"amount": 2999.0, "risk": None}
    assert (row["transaction_id"], row["customer_id"], row["terminal_id"]) == (2999, 1, 2)
    plog.close()
    again = make()  # nothing left to replay
    assert again.stats().replayed == 0
    assert len(again.read()) == n


def test_logged_ids_are_the_stored_ids_under_a_prefix_since(make: Factory) -> None:
    """What a job run again asks before logging: its rows already stored, buffered ones
    included (flushed first), by (request id, variant), none older than `since`."""
    plog = make()
    plog.append(
        [record(0, request_id="job1:1", variant="champion"), record(1, request_id="other:1")]
    )
    plog.flush()
    plog.append([record(2, request_id="job1:2", variant="shadow")])  # still buffered
    assert plog.logged_ids("job1:") == {("job1:1", "champion"), ("job1:2", "shadow")}
    assert plog.logged_ids("job2:") == set()
    later = T0 + timedelta(milliseconds=2)
    assert plog.logged_ids("job1:", later) == {("job1:2", "shadow")}
