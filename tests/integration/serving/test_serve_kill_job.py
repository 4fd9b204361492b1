"""`mlsd serve` killed with SIGKILL mid-job: at the restart the job runs again at once, and
every job row is in the prediction log exactly once.

A real server process on a scratch data folder, with its job queue on the shared Redis
(fresh key prefix), scores a Parquet job; once some chunks are done it gets `kill -9`.
The job is left "running", owned by the dead process. The restarted server (same data
folder) takes the folder's worker lock, which the kernel released at the kill, so it
requeues the job at start instead of waiting for a lease or a heartbeat to lapse; the job
runs again (attempt 2) and logs only the rows the killed run had not logged (those were
journaled, and replayed when the restarted server opened the log).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from mlsd.features.store import FeatureStore
from mlsd.predlog import open_reader
from mlsd.registry import Registry
from mlsd.serving.server import free_port
from mlsd.serving.testing import NOW, register_tiny_model, seed_feature_store, tiny_model_artifacts
from mlsd.settings import Settings

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SERVE = "from mlsd.cli.main import run; run()"
ROWS = 60_000


def _setup(home: Path) -> None:
    settings = Settings(home=home)
    store = FeatureStore.open(settings)
    views = seed_feature_store(store)
    store.close()
    with Registry.open(settings) as registry:
        register_tiny_model(registry, tiny_model_artifacts(1), views)
        registry.set_alias("fraud", "champion", 1, reason="test", actor="test")
    pd.DataFrame(
        {
            "transaction_id": range(1, ROWS + 1),
            "customer_id": [1 + i % 3 for i in range(ROWS)],
            "terminal_id": 7,
            "amount": [1.0 + i % 500 for i in range(ROWS)],
            "timestamp": pd.Timestamp(NOW),
        }
    ).to_parquet(home / "batch.parquet")


def _start(home: Path, port: int, env: dict[str, str], *flags: str) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "--port", str(port), *flags],
        env={**os.environ, "MLSD_HOME": str(home), **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).is_success:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    _stop(server)
    raise AssertionError("the server did not get ready in 90 s")


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.kill()
    server.wait(timeout=30)
    server.stderr.close()  # type: ignore[union-attr]


def _poll(url: str, job_id: str, until: Any, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=5).json()
        if until(body):
            return body
        time.sleep(0.01)
    raise AssertionError(f"job never reached the state wanted; last {body}")


def test_kill_9_mid_job_requeues_at_start_and_logs_each_row_once(
    home: Path, redis_url: str, redis_prefix: str
) -> None:
    _setup(home)
    env = {"MLSD_JOB_QUEUE": redis_url, "MLSD_REDIS_PREFIX": redis_prefix}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start(home, port, env)
    try:
        submitted = httpx.post(f"{url}/v1/jobs", json={"path": "batch.parquet"}, timeout=10)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["job_id"]
        midway = _poll(url, job_id, lambda b: b["done"] >= 4096 or b["state"] == "done", 60)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    finally:
        _stop(server)
    assert midway["state"] == "running", f"the job was not killed midway: {midway}"
    assert midway["done"] < ROWS, f"the job was not killed midway: {midway}"
    assert server.returncode == -signal.SIGKILL

    restarted_at = time.monotonic()
    server = _start(home, port, env)
    try:
        done = _poll(url, job_id, lambda b: b["state"] in ("done", "failed"), 60)
        finished_after_s = time.monotonic() - restarted_at
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        _stop(server)
    assert done["state"] == "done", done
    assert done["attempts"] == 2, done
    # requeued at start: the old worker's lease (5 s) and heartbeat (60 s) were not waited for
    assert finished_after_s < 45, f"the job finished {finished_after_s:.1f} s after the restart"
    results = pd.read_parquet(done["result_path"])
    assert len(results) == ROWS

    logged = open_reader(Settings(home=home)).read()
    rows = logged[logged["request_id"].str.startswith(f"{job_id}:")]
    assert len(rows) == ROWS, f"{len(rows) - ROWS:+d} rows against the {ROWS} of the job"
    assert rows["request_id"].is_unique, "a job row was logged twice"
