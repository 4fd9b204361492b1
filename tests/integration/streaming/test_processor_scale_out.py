"""Scale-out on the log's own group mechanism: two `mlsd stream run` processes in one
group share the stream; `kill -9` one and the other takes over its uncommitted work:
every transaction decided and logged, none lost (embedded log, Redis, NATS, Kafka)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from mlsd.data.transaction import Transaction
from mlsd.predlog import make_prediction_log
from mlsd.serving.testing import NOW
from mlsd.settings import Settings
from mlsd.streaming import Record, open_event_log
from mlsd.streaming.codec import transaction_record
from tests.integration.streaming.test_processor_kill import (
    CLI,
    count_is_exact,
    decided_count,
    decisions,
    scoring_home,
)

EVENTS = 4_000
CHUNK = 20


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
        return f"{request.getfixturevalue('nats_url')}?prefix=s{run_id}_&timeout_ms=15000", 1.0
    if request.param == "kafka":
        return f"kafka://{request.getfixturevalue('kafka_bootstrap')}?prefix=s{run_id}_", 6.0
    return "", 1.0


@pytest.mark.slow
def test_two_processors_share_the_stream_and_one_takes_over(
    tmp_path: Path, log_url: tuple[str, float]
) -> None:
    url, session_s = log_url
    settings = Settings(home=tmp_path / "home", event_log=url, prediction_log_flush_seconds=0.05)
    scoring_home(settings)
    log = open_event_log(settings)
    log.create_topic("transactions", 4)

    def records(start: int, stop: int) -> list[Record]:
        return [
            transaction_record(Transaction(i, i % 50, 7, 5.0 + i % 300, NOW + timedelta(seconds=i)))
            for i in range(start, stop)
        ]

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
    first, second = (subprocess.Popen([*args, "--idle-exit", "120"], env=env) for _ in range(2))
    try:
        # trickle events in until both members have decided some (both have started and
        # are in the group), then the bulk
        published, members = 0, set()
        deadline = time.monotonic() + 60
        while len(members) < 2:
            assert first.poll() is None, "a processor exited"
            assert second.poll() is None, "a processor exited"
            assert time.monotonic() < deadline, f"members seen deciding: {members}"
            log.publish("transactions", records(published, published + CHUNK))
            published += CHUNK
            time.sleep(0.05)
            if decided_count(log):
                members = {str(d["decided_by"]) for d in decisions(log)}
        total = published + EVENTS
        log.publish("transactions", records(published, total))
        os.kill(first.pid, signal.SIGKILL)  # mid-stream: most events are not decided yet
        first.wait(timeout=10)

        deadline = time.monotonic() + 60
        decided: set[int] = set()
        while len(decided) < total:
            assert second.poll() is None, f"the survivor exited with {second.returncode}"
            assert time.monotonic() < deadline, f"{len(decided)} of {total} decided"
            time.sleep(0.1)
            if decided_count(log) >= total or not count_is_exact(log):
                decided = {int(str(d["transaction_id"])) for d in decisions(log)}
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert decided == set(range(total))
    for topic in ("transactions", "decisions", "transactions-dead"):
        log.delete_topic(topic)
    log.close()
    predictions = make_prediction_log(settings)
    try:
        logged = set(predictions.read()["request_id"])
    finally:
        predictions.close()
    assert logged == {f"tx-{i}" for i in range(total)}
