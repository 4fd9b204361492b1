"""kill -9 of `mlsd stream run` mid-stream on the embedded log, then a restart: every
input transaction has a decision and a prediction-log record (one per transaction id),
none is lost, and the group ends fully committed."""

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

from mlsd.data.transaction import Transaction
from mlsd.features.store import FeatureStore
from mlsd.predlog import make_prediction_log
from mlsd.registry import Registry
from mlsd.serving.testing import NOW, register_tiny_model, seed_feature_store, tiny_model_artifacts
from mlsd.settings import Settings
from mlsd.streaming import open_event_log
from mlsd.streaming.codec import transaction_record
from mlsd.streaming.log_sqlite import SqliteEventLog

EVENTS = 6_000
CLI = "from mlsd.cli.main import run; run()"


def _decisions(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM events WHERE topic = 'decisions'").fetchone()[0]
        )


def test_kill_9_of_the_processor_then_restart(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", prediction_log_flush_seconds=0.05)
    store = FeatureStore.open(settings)
    views = seed_feature_store(store)
    store.close()
    registry = Registry.open(settings)
    register_tiny_model(registry, tiny_model_artifacts(1), views)
    registry.set_alias("fraud", "champion", 1, reason="test", actor="test")
    registry.close()
    log = open_event_log(settings)
    assert isinstance(log, SqliteEventLog)
    log.create_topic("transactions", 3)
    txs = [
        Transaction(i, 1 + i % 2, 7, 5.0 + i % 300, NOW - timedelta(seconds=EVENTS - i))
        for i in range(EVENTS)
    ]
    log.publish("transactions", [transaction_record(tx) for tx in txs])
    env = {
        **os.environ,
        "MLSD_HOME": str(settings.home),
        "MLSD_PREDICTION_LOG_FLUSH_SECONDS": "0.05",
    }
    args = [sys.executable, "-c", CLI, "stream", "run", "--batch", "32", "--session-timeout", "1"]

    first = subprocess.Popen([*args, "--idle-exit", "60"], env=env)
    deadline = time.monotonic() + 60
    while _decisions(log.path) < EVENTS // 6:
        assert first.poll() is None, f"the processor exited with {first.returncode}"
        assert time.monotonic() < deadline, "no decisions within 60 s"
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert _decisions(log.path) < EVENTS, "the processor finished before the kill"

    second = subprocess.run(
        [*args, "--idle-exit", "1"], env=env, timeout=120, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr

    decided = [
        json.loads(e.value)["transaction_id"]
        for p in range(3)
        for e in log.replay("decisions", p, limit=10 * EVENTS)
    ]
    assert set(decided) == set(range(EVENTS)), "a transaction has no decision"
    assert len(decided) >= EVENTS  # redelivered batches decide again, under the same id
    assert log.replay("transactions-dead", 0) == []
    heads = {}
    for p in range(3):
        stored = log.replay("transactions", p, limit=10 * EVENTS)
        heads[p] = stored[-1].offset + 1 if stored else 0
    assert log.committed("transactions", "mlsd-stream") == heads
    log.close()

    predictions = make_prediction_log(settings)
    try:
        frame = predictions.read()
    finally:
        predictions.close()
    assert set(frame["request_id"]) == {f"tx-{i}" for i in range(EVENTS)}
