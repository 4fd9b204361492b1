"""The stream processor on the embedded log: decisions for good events, dead letters
with the reason for bad ones, prediction-log records, and commits only after both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mlsd.data.transaction import Transaction
from mlsd.features.store import FeatureStore
from mlsd.inference.observers import ScoredBatch
from mlsd.predlog import make_prediction_log
from mlsd.registry import Registry
from mlsd.serving.testing import NOW, register_tiny_model, seed_feature_store, tiny_model_artifacts
from mlsd.settings import Settings
from mlsd.streaming import EventLog, Record, open_event_log
from mlsd.streaming.codec import transaction_record
from mlsd.streaming.processor import StreamConfig
from mlsd.streaming.wiring import open_processor


@pytest.fixture
def settings(home: Path) -> Settings:
    s = Settings(home=home, prediction_log_flush_seconds=0.05)
    store = FeatureStore.open(s)
    views = seed_feature_store(store)
    store.close()
    registry = Registry.open(s)
    register_tiny_model(registry, tiny_model_artifacts(1), views)
    registry.set_alias("fraud", "champion", 1, reason="test", actor="test")
    registry.close()
    return s


@pytest.fixture
def events(settings: Settings) -> Iterator[EventLog]:
    log = open_event_log(settings)
    log.create_topic("transactions", 2)
    yield log
    log.close()


def _tx(i: int) -> Transaction:
    return Transaction(1000 + i, 1 + i % 2, 7, 10.0 + i, NOW - timedelta(minutes=60 - i))


def _decisions(log: EventLog, topic: str) -> list[dict[str, object]]:
    return [
        json.loads(e.value)
        for p in range(log.partitions(topic))
        for e in log.replay(topic, p, limit=10_000)
    ]


def test_scores_publishes_dead_letters_and_commits(settings: Settings, events: EventLog) -> None:
    good = [_tx(i) for i in range(40)]
    bad = [
        Record("1", b"not json"),
        Record("1", json.dumps({"v": 2, "transaction_id": 1}).encode()),
        Record("2", json.dumps({**json.loads(transaction_record(good[0]).value),
                                "amount": -5}).encode()),
    ]  # fmt: skip
    events.publish("transactions", [transaction_record(tx) for tx in good] + bad)
    processor, close = open_processor(settings, StreamConfig(batch=16), follow_alias=False)
    try:
        stats = processor.run(max_events=43)
        assert processor.consumer.lag() == 0
    finally:
        close()
    assert (stats.consumed, stats.scored, stats.dead_lettered) == (43, 40, 3)
    sample = processor.metrics.registry.get_sample_value
    assert sample("mlsd_stream_events_total", {"outcome": "decided"}) == 40
    assert sample("mlsd_stream_events_total", {"outcome": "dead_letter"}) == 3
    from mlsd.streaming import partition_for

    used = sorted({str(partition_for(str(c), 2)) for c in (1, 2)})  # the keys' partitions

    def total(name: str) -> float:
        return sum(sample(name, {"partition": p}) or 0.0 for p in used)

    assert total("mlsd_stream_event_latency_seconds_count") == 43
    # end to end (event time to decision published): the 40 decided events only
    assert total("mlsd_stream_decision_latency_seconds_count") == 40
    assert total("mlsd_stream_partition_events_total") == 43
    assert {str(p): part.events for p, part in stats.partitions.items()} == {
        p: sample("mlsd_stream_partition_events_total", {"partition": p}) for p in used
    }
    assert sample("mlsd_stream_batches_total") == 3  # 43 events in batches of 16
    assert [sample("mlsd_stream_lag_events", {"partition": p}) for p in ("0", "1")] == [0, 0]
    p50 = stats.decision_latency_ms(0.5)
    assert p50 is not None
    assert p50 > 0
    scored_rows = sum(  # the pipeline's own metrics are in the same registry
        m.value
        for family in processor.metrics.registry.collect()
        if family.name == "mlsd_predictions"
        for m in family.samples
        if m.name == "mlsd_predictions_total"
    )
    assert scored_rows == 40

    decisions = _decisions(events, "decisions")
    assert sorted(d["transaction_id"] for d in decisions) == [tx.transaction_id for tx in good]
    assert {d["decision"] for d in decisions} <= {"fraud", "legit"}
    assert all(0.0 <= float(d["score"]) <= 1.0 for d in decisions)  # type: ignore[arg-type]
    assert {(d["model"], d["version"], d["variant"]) for d in decisions} == {
        ("fraud", 1, "champion")
    }
    reasons = sorted(str(d["reason"]) for d in _decisions(events, "transactions-dead"))
    assert reasons[0].startswith("amount: amount must be >= 0")
    assert reasons[1].startswith("v: schema version 2 is not supported")
    assert reasons[2].startswith("value: not JSON")

    predictions = make_prediction_log(settings)
    try:
        frame = predictions.read()
    finally:
        predictions.close()
    stream_rows = frame[frame["endpoint"] == "stream"]  # the entry point is stored as endpoint
    assert sorted(stream_rows["request_id"]) == sorted(f"tx-{tx.transaction_id}" for tx in good)
    assert sorted(stream_rows["transaction_id"]) == [tx.transaction_id for tx in good]

    again = events.consumer("transactions", "mlsd-stream")
    assert again.poll(100, 0.2) == [], "everything processed was committed"


def test_a_poison_event_is_isolated_and_the_stream_goes_on(
    settings: Settings, events: EventLog
) -> None:
    txs = [_tx(i) for i in range(30)]
    events.publish("transactions", [transaction_record(tx) for tx in txs])
    processor, close = open_processor(settings, StreamConfig(batch=32), follow_alias=False)

    class Poison:
        def observe(self, batch: ScoredBatch) -> None:
            if any(tx.transaction_id == 1017 for tx in batch.request.transactions):
                raise ValueError("boom on 1017")

    processor.pipeline.add_observer(Poison(), critical=True)
    try:
        stats = processor.run(max_events=30)
    finally:
        close()
    assert (stats.scored, stats.dead_lettered) == (29, 1)
    dead = _decisions(events, "transactions-dead")
    assert len(dead) == 1
    assert "boom on 1017" in str(dead[0]["reason"])
    assert json.loads(str(dead[0]["value"]))["transaction_id"] == 1017
    ids = sorted(int(d["transaction_id"]) for d in _decisions(events, "decisions"))  # type: ignore[call-overload]
    assert ids == sorted(tx.transaction_id for tx in txs if tx.transaction_id != 1017)


def test_a_bad_batch_size_is_refused() -> None:
    from mlsd.errors import ValidationError

    with pytest.raises(ValidationError, match="batch"):
        StreamConfig(batch=0)


def test_a_processor_started_before_any_event_creates_its_topics(settings: Settings) -> None:
    processor, close = open_processor(
        settings, StreamConfig(partitions=3, poll_timeout_s=0.05), follow_alias=False
    )
    try:
        assert processor.run(idle_exit_s=0.1).consumed == 0
        assert processor.events.partitions("transactions") == 3
        assert processor.events.partitions("decisions") == 3
        processor.events.publish("transactions", [transaction_record(_tx(1))])
        assert processor.run(max_events=1).scored == 1
    finally:
        close()
