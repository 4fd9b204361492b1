"""kill -9 of the Kafka broker itself: Tansu on S3 storage (moto's server) keeps the
events and the group's committed offsets; after its restart the group resumes with
exactly the events it had not committed, and a stream processor running through the
kill decides every transaction, none lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mlsd.data.transaction import Transaction
from mlsd.errors import NotFoundError, UnavailableError
from mlsd.predlog import make_prediction_log
from mlsd.serving.testing import NOW
from mlsd.settings import Settings
from mlsd.streaming import Record, open_event_log
from mlsd.streaming.codec import transaction_record
from mlsd.streaming.log_kafka import KafkaEventLog
from mlsd.streaming.tansu import s3_environment, start_tansu

from .test_processor_kill import CLI, decisions, scoring_home

pytestmark = [pytest.mark.kafka, pytest.mark.s3, pytest.mark.slow]


@pytest.fixture
def bucket(s3_endpoint: str, run_id: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh bucket on the S3 server: Tansu's storage URL and environment; emptied and
    deleted afterwards."""
    import boto3

    name = f"tansu-{run_id}"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    s3.create_bucket(Bucket=name)
    yield f"s3://{name}/", s3_environment(s3_endpoint)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


def test_a_durable_broker_killed_and_restarted_loses_and_repeats_nothing(
    bucket: tuple[str, dict[str, str]],
) -> None:
    storage, env = bucket
    broker = start_tansu(storage=storage, env=env)
    try:
        log = KafkaEventLog(broker.bootstrap)
        log.create_topic("tx", 2)
        log.publish("tx", [Record(f"k{i}", str(i).encode()) for i in range(100)])
        member = log.consumer("tx", "g", session_timeout_s=6.0)
        done: list[int] = []
        deadline = time.monotonic() + 30
        while len(done) < 60:
            assert time.monotonic() < deadline, f"{len(done)} of 60 committed"
            batch = member.poll(60 - len(done), 0.5)
            assert member.commit(batch)
            done += [int(e.value) for e in batch]
        member.close()
        log.close()
        broker.process.kill()  # SIGKILL: no clean shutdown
        broker.process.wait(timeout=10)

        broker = start_tansu(broker.port, storage=storage, env=env)  # same port, same data
        log = KafkaEventLog(broker.bootstrap)
        assert sorted(int(e.value) for p in range(2) for e in log.replay("tx", p)) == list(
            range(100)
        )
        member = log.consumer("tx", "g", session_timeout_s=6.0)
        rest: list[int] = []
        deadline = time.monotonic() + 30
        while len(rest) < 40:
            assert time.monotonic() < deadline, f"{len(rest)} of the 40 uncommitted came back"
            rest += [int(e.value) for e in member.poll(100, 0.5)]
        assert sorted(rest) == sorted(set(range(100)) - set(done)), "committed events came back"
        member.close()
        log.close()
    finally:
        broker.stop()


EVENTS = 3_000


def _decided_ids(settings: Settings) -> list[int]:
    """Every decision's transaction id, one per delivery (none while the broker is down)."""
    log = open_event_log(settings)
    try:
        return [int(str(d["transaction_id"])) for d in decisions(log)]
    except (UnavailableError, NotFoundError):  # down, or no decisions topic yet
        return []
    finally:
        log.close()


def test_a_stream_processor_decides_everything_through_a_kill_9_of_the_broker(
    bucket: tuple[str, dict[str, str]], run_id: str, tmp_path: Path
) -> None:
    """`mlsd stream run` on the durable broker; the broker is killed mid-stream and
    restarted on the same storage. The processor exits 6 (unavailable) or rides the
    outage out (run again as a supervisor would when it exits); it decides every
    transaction, those published before the kill and after the restart, and each one is
    in the prediction log: nothing the broker had acknowledged is lost."""
    storage, env = bucket
    broker = start_tansu(storage=storage, env=env)
    url = f"kafka://{broker.bootstrap}?prefix=p{run_id}_"
    settings = Settings(home=tmp_path / "home", event_log=url, prediction_log_flush_seconds=0.05)
    scoring_home(settings)
    txs = [
        Transaction(i, 1 + i % 50, 7, 5.0 + i % 300, NOW - timedelta(seconds=2 * EVENTS - i))
        for i in range(2 * EVENTS)
    ]
    txs, later = txs[:EVENTS], txs[EVENTS:]
    log = open_event_log(settings)
    log.create_topic("transactions", 3)
    log.publish("transactions", [transaction_record(tx) for tx in txs])
    log.close()
    process_env = {
        **os.environ,
        "MLSD_HOME": str(settings.home),
        "MLSD_EVENT_LOG": url,
        "MLSD_PREDICTION_LOG_FLUSH_SECONDS": "0.05",
    }
    args = [sys.executable, "-c", CLI, "stream", "run", "--batch", "32",
            "--session-timeout", "6", "--idle-exit", "300"]  # fmt: skip
    runs: list[Any] = [subprocess.Popen(args, env=process_env)]
    try:
        deadline = time.monotonic() + 90
        while not _decided_ids(settings):
            assert runs[-1].poll() is None, f"the processor exited with {runs[-1].returncode}"
            assert time.monotonic() < deadline, "no decision within 90 s"
            time.sleep(0.2)
        broker.process.kill()  # SIGKILL: no clean shutdown, mid-stream
        broker.process.wait(timeout=10)
        time.sleep(2.0)  # the processor meets the outage
        broker = start_tansu(broker.port, storage=storage, env=env)
        # more payments after the restart: decided only by a processor that came through
        # the outage, however far the first ones had got before the kill
        log = open_event_log(settings)
        log.publish("transactions", [transaction_record(tx) for tx in later])
        log.close()
        deadline = time.monotonic() + 240
        decided: list[int] = []
        while len(set(decided)) < 2 * EVENTS:
            assert time.monotonic() < deadline, f"{len(set(decided))} of {2 * EVENTS} decided"
            code = runs[-1].poll()
            if code is not None:  # the supervisor's part: an outage exits 6, run it again
                assert code == UnavailableError.exit_code, f"the processor exited with {code}"
                assert len(runs) < 5, "restarted 4 times"
                runs.append(subprocess.Popen(args, env=process_env))
            time.sleep(0.5)
            decided = _decided_ids(settings)
        runs[-1].send_signal(signal.SIGTERM)
        assert runs[-1].wait(timeout=60) == 0
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait(timeout=10)
        broker.stop()
    assert set(decided) == set(range(2 * EVENTS)), "a transaction has no decision"
    predictions = make_prediction_log(settings)
    try:
        logged = {rid for rid, _ in predictions.logged_ids("tx-")}
    finally:
        predictions.close()
    assert logged == {f"tx-{i}" for i in range(2 * EVENTS)}, "a decision has no log record"
