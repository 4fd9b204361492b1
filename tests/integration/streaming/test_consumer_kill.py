"""kill -9 of a real consumer process mid-stream, then a restart: every event appears
exactly once in the committed output and none is lost (at-least-once delivery plus
output keyed by event id). The log alone, on the embedded log and Redis; the processor's
own kill test (test_processor_kill.py) runs on every backend."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlsd.settings import Settings
from mlsd.streaming import Record, open_event_log

WORKER = Path(__file__).with_name("worker.py")
EVENTS = 4000


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def log_url(request: pytest.FixtureRequest, run_id: str) -> tuple[str, float]:
    """The event log URL and the session timeout of the test."""
    if request.param == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        return f"{request.getfixturevalue('redis_url')}?prefix={prefix}", 1.0
    return "", 1.0


def _count(output: Path, table: str) -> int:
    if not output.exists():
        return 0
    with sqlite3.connect(output, timeout=30) as db:
        try:
            return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:  # the worker has not created it yet
            return 0


def _wait(what: str, check: object, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert proc.poll() is None, f"worker exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(
    tmp_path: Path, log_url: tuple[str, float]
) -> None:
    url, session_s = log_url
    settings = Settings(home=tmp_path / "home", event_log=url)
    log = open_event_log(settings)
    log.create_topic("input", 3)
    try:
        log.publish("input", [Record(f"c{i % 97}", str(i).encode()) for i in range(EVENTS)])
        output = tmp_path / "output.sqlite"
        env = {**os.environ, "MLSD_HOME": str(settings.home), "MLSD_EVENT_LOG": url}

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [
                    sys.executable,
                    str(WORKER),
                    str(output),
                    "--pace-ms",
                    "5",
                    "--session-s",
                    str(session_s),
                ],
                env=env,
            )

        first = start()
        _wait("a quarter of the output", lambda: _count(output, "output") >= EVENTS // 4, first)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        at_kill = _count(output, "output")
        assert at_kill < EVENTS, "the worker finished before the kill: not mid-stream"

        second = start()
        try:
            _wait("every event in the output", lambda: _count(output, "output") >= EVENTS, second)
        finally:
            second.kill()
            second.wait(timeout=10)
        with sqlite3.connect(output) as db:
            rows = db.execute("SELECT event_id, doubled FROM output").fetchall()
            deliveries = db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        assert sorted(int(i) for i, _ in rows) == list(range(EVENTS))
        assert all(doubled == 2 * int(i) for i, doubled in rows)
        assert deliveries >= EVENTS  # some may be delivered twice; the output has each once
    finally:
        log.delete_topic("input")
        log.close()
