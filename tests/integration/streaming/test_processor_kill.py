"""kill -9 of `mlsd stream run` mid-stream, then a restart, on the embedded log, Redis,
NATS and Kafka: every input transaction has a decision and a prediction-log record (one per
transaction id), none is lost, and nothing is left to consume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from mlsd.data.transaction import Transaction
from mlsd.errors import NotFoundError
from mlsd.features.store import FeatureStore
from mlsd.predlog import make_prediction_log
from mlsd.registry import Registry
from mlsd.serving.testing import NOW, register_tiny_model, seed_feature_store, tiny_model_artifacts
from mlsd.settings import Settings
from mlsd.streaming import EventLog, open_event_log
from mlsd.streaming.codec import transaction_record

EVENTS = 6_000
CLI = "from mlsd.cli.main import run; run()"


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
        pytest.param("kafka", marks=pytest.mark.kafka),
    ]
)
def log_url(request: pytest.FixtureRequest, run_id: str) -> tuple[str, float]:
    """The event log URL and the session timeout its backend takes (Kafka: 6 s at least)."""
    if request.param == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        return f"{request.getfixturevalue('redis_url')}?prefix={prefix}", 1.0
    if request.param == "nats":
        return f"{request.getfixturevalue('nats_url')}?prefix=p{run_id}_&timeout_ms=15000", 1.0
    if request.param == "kafka":
        return f"kafka://{request.getfixturevalue('kafka_bootstrap')}?prefix=p{run_id}_", 6.0
    return "", 1.0


def scoring_home(settings: Settings) -> None:
    """The feature store (handbook views) and fraud@champion, a tiny real model."""
    store = FeatureStore.open(settings)
    views = seed_feature_store(store)
    store.close()
    registry = Registry.open(settings)
    register_tiny_model(registry, tiny_model_artifacts(1), views)
    registry.set_alias("fraud", "champion", 1, reason="test", actor="test")
    registry.close()


def decisions(log: EventLog) -> list[dict[str, object]]:
    """Every decision event, parsed."""
    return [
        json.loads(e.value)
        for p in range(log.partitions("decisions"))
        for e in log.replay("decisions", p, limit=10 * EVENTS)
    ]


def count_is_exact(log: EventLog) -> bool:
    """False where `decided_count` is only a lower bound (Kafka)."""
    from mlsd.streaming.log_kafka import KafkaEventLog

    return not isinstance(log, KafkaEventLog)


def decided_count(log: EventLog) -> int:
    """How many decisions the log holds, cheaply: exact, or a lower bound on Kafka (the
    ListOffsets watermark may lag a batch): for "at least", never for "all"."""
    from mlsd.streaming.log_kafka import KafkaEventLog
    from mlsd.streaming.log_nats import NatsEventLog
    from mlsd.streaming.log_redis import RedisEventLog
    from mlsd.streaming.log_sqlite import SqliteEventLog

    try:
        parts = range(log.partitions("decisions"))
    except NotFoundError:
        return 0  # the processor has not created its topics yet
    if isinstance(log, SqliteEventLog):
        with sqlite3.connect(log.path, timeout=30) as conn:
            query = "SELECT IFNULL(SUM(n), 0) FROM chunks WHERE topic = 'decisions'"
            return int(conn.execute(query).fetchone()[0])
    if isinstance(log, RedisEventLog):
        return sum(int(log.client.xlen(log.stream("decisions", p))) for p in parts)
    if isinstance(log, NatsEventLog):
        return int(log.run(log.js.stream_info(log.stream("decisions"))).state.messages)
    if isinstance(log, KafkaEventLog):  # high watermarks: at most an underestimate
        ck = log._ck
        client = ck.Consumer({"bootstrap.servers": log.bootstrap, "group.id": "count"})
        try:
            name = log.topic_name("decisions")
            return sum(
                client.get_watermark_offsets(ck.TopicPartition(name, p), 5.0, False)[1]
                for p in parts
            )
        finally:
            client.close()
    return _exact(log)


def _exact(log: EventLog) -> int:
    parts = range(log.partitions("decisions"))
    return sum(len(log.replay("decisions", p, limit=10 * EVENTS)) for p in parts)


@pytest.mark.slow
def test_kill_9_of_the_processor_then_restart(tmp_path: Path, log_url: tuple[str, float]) -> None:
    url, session_s = log_url
    settings = Settings(home=tmp_path / "home", event_log=url, prediction_log_flush_seconds=0.05)
    scoring_home(settings)
    log = open_event_log(settings)
    log.create_topic("transactions", 3)
    txs = [
        Transaction(i, 1 + i % 2, 7, 5.0 + i % 300, NOW - timedelta(seconds=EVENTS - i))
        for i in range(EVENTS)
    ]
    log.publish("transactions", [transaction_record(tx) for tx in txs])
    env = {
        **os.environ,
        "MLSD_HOME": str(settings.home),
        "MLSD_EVENT_LOG": url,
        "MLSD_PREDICTION_LOG_FLUSH_SECONDS": "0.05",
    }
    args = [
        sys.executable,
        "-c",
        CLI,
        "stream",
        "run",
        "--batch",
        "32",
        "--session-timeout",
        str(session_s),
    ]

    first = subprocess.Popen([*args, "--idle-exit", "60"], env=env)
    deadline = time.monotonic() + 60
    while decided_count(log) < EVENTS // 6:
        assert first.poll() is None, f"the processor exited with {first.returncode}"
        assert time.monotonic() < deadline, "no decisions within 60 s"
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert _exact(log) < EVENTS, "the processor finished before the kill"

    second = subprocess.Popen([*args, "--idle-exit", "120"], env=env)
    deadline = time.monotonic() + 90
    decided: list[int] = []
    while len(set(decided)) < EVENTS:  # every transaction decided: stop it gracefully
        assert second.poll() is None, f"the processor exited with {second.returncode}"
        assert time.monotonic() < deadline, f"{len(set(decided))} of {EVENTS} decided"
        time.sleep(0.1)
        if decided_count(log) >= EVENTS or not count_is_exact(log):
            decided = [int(str(d["transaction_id"])) for d in decisions(log)]
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0
    assert set(decided) == set(range(EVENTS)), "a transaction has no decision"
    assert len(decided) >= EVENTS  # redelivered batches decide again, under the same id
    assert log.replay("transactions-dead", 0) == []
    if session_s <= 1.0:  # (a Kafka group join alone takes ~3 s: not worth the wait)
        left = log.consumer("transactions", "mlsd-stream", session_timeout_s=session_s)
        assert left.poll(10, 2 * session_s) == [], "the group ends fully committed"
        left.close()
    for topic in ("transactions", "decisions", "transactions-dead"):
        log.delete_topic(topic)
    log.close()

    predictions = make_prediction_log(settings)
    try:
        frame = predictions.read()
    finally:
        predictions.close()
    assert set(frame["request_id"]) == {f"tx-{i}" for i in range(EVENTS)}
