"""Delayed labels on the feedback topic, joined to decisions by transaction id into the
label table: in label-time order, idempotent by transaction id across a redelivery and a
restart, a label before its decision joined once the decision comes, a bad label a dead
letter. On the embedded log and on Redis Streams."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.data.transaction import Transaction
from mlsd.monitoring.label_table import LabelTable
from mlsd.settings import Settings
from mlsd.streaming import EventLog, Record, open_event_log
from mlsd.streaming.codec import decision_record
from mlsd.streaming.labels import LabelConsumer, label_records, publish_labels

BACKENDS = ["embedded", pytest.param("redis", marks=pytest.mark.redis)]
T0 = datetime(2026, 4, 1, 12, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def events(log_settings: Settings) -> Iterator[EventLog]:
    log = open_event_log(log_settings)
    yield log
    for topic in ("labels", "decisions", "labels-dead"):
        try:
            log.delete_topic(topic)
        except Exception:  # noqa: BLE001 - a topic the test never made
            continue
    log.close()


def _frame(n: int) -> pd.DataFrame:
    """n payments a minute apart; every third is a fraud; labels known 7 days later, in
    the reverse order of the payments (a later payment's chargeback may come first)."""
    when = [T0 + timedelta(minutes=i) for i in range(n)]
    known = [T0 + timedelta(days=7, minutes=n - i) for i in range(n)]
    return pd.DataFrame(
        {
            schema.TRANSACTION_ID: range(100, 100 + n),
            schema.CUSTOMER_ID: [i % 5 for i in range(n)],
            schema.TX_DATETIME: pd.to_datetime(when, utc=True),
            schema.TX_FRAUD: [int(i % 3 == 0) for i in range(n)],
            schema.LABEL_AVAILABLE_AT: pd.to_datetime(known, utc=True),
        }
    )


def _decide(log: EventLog, frame: pd.DataFrame) -> None:
    records = [
        decision_record(
            Transaction(int(r.TRANSACTION_ID), int(r.CUSTOMER_ID), 1, 1.0,
                        r.TX_DATETIME.to_pydatetime()),
            0.9 if r.TX_FRAUD else 0.1, "fraud" if r.TX_FRAUD else "legit",
            "fraud", 3, "champion", T0.isoformat(),
        )
        for r in frame.itertuples(index=False)
    ]  # fmt: skip
    log.publish("decisions", records)


def test_labels_are_published_in_label_time_order() -> None:
    frame = _frame(6)
    records = label_records(frame)
    stamps = [r.timestamp_ms for r in records]
    assert stamps == sorted(stamps)
    assert [json.loads(r.value)["transaction_id"] for r in records] == [
        105,
        104,
        103,
        102,
        101,
        100,
    ]


def test_labels_join_decisions_idempotently_across_restarts(
    events: EventLog, tmp_path: Path
) -> None:
    frame = _frame(30)
    events.create_topic("decisions", 2)
    _decide(events, frame.iloc[:20])  # the last 10 payments are not decided yet
    assert publish_labels(events, frame, "labels", 2) == 30
    events.publish("labels", [Record("1", b"not json"), Record("1", b'{"v":1,"label":3}')])
    table = LabelTable(tmp_path / "labels")

    first = LabelConsumer(events, table, partitions=2, session_timeout_s=1.0)
    stats = first.run(max_events=32, idle_exit_s=2.0)
    first.close()
    assert (stats.labels, stats.dead_lettered, stats.waiting) == (30, 2, 10)
    rows = table.read()
    assert rows["TRANSACTION_ID"].tolist() == list(range(100, 130))
    assert rows["label"].tolist() == frame[schema.TX_FRAUD].tolist()
    joined = rows[rows["decision"].notna()]
    assert joined["TRANSACTION_ID"].tolist() == list(range(100, 120))
    assert (joined["decision"] == joined["label"].map({1: "fraud", 0: "legit"})).all()
    assert set(joined["version"]) == {3}
    dead = [json.loads(e.value) for p in range(2) for e in events.replay("labels-dead", p)]
    assert sorted(d["reason"].split(":")[0] for d in dead) == ["transaction_id", "value"]

    _decide(events, frame.iloc[20:])  # the rest is decided; a restarted consumer joins it
    second = LabelConsumer(events, table, partitions=2, session_timeout_s=1.0)
    stats = second.run(idle_exit_s=1.0)
    second.close()
    assert stats.labels == 0, "everything consumed was committed"
    assert (stats.joined, stats.waiting) == (10, 0)
    rows = table.read()
    assert rows["TRANSACTION_ID"].tolist() == list(range(100, 130))
    assert rows["decision"].notna().all()

    # a redelivery (here: another group reading everything again) writes rows again: the
    # table still holds one per transaction, with the same values
    again = LabelConsumer(events, table, group="replayer", partitions=2, session_timeout_s=1.0)
    stats = again.run(max_events=32, idle_exit_s=2.0)
    again.close()
    assert stats.labels == 30
    assert len(table.parts()) > 2
    after = table.read()
    columns = ["TRANSACTION_ID", "label", "score", "decision", "version"]
    assert after[columns].equals(rows[columns])
    assert table.compact() == 30
    assert len(table.parts()) == 1
    assert table.read()[columns].equals(rows[columns])
