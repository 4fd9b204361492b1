"""`mlsd serve --no-job-worker` takes jobs and `mlsd worker` runs them, in its own process.

The mechanism of keeping batch work off the serving process (its figure, online p99 with
and without a 2 M-row job, is in `python -m benchmarks.faults`): the server never claims
a job, the worker scores it with the same model and logs its rows to the same log.
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
import pytest

from mlsd.predlog import open_reader
from mlsd.serving.server import free_port
from mlsd.serving.testing import sample_transaction
from mlsd.settings import Settings

from .test_serve_kill_job import SERVE, _setup, _start, _stop

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _job(url: str, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=5).json()
    return body


def test_jobs_run_in_the_worker_process_not_in_the_server(
    home: Path, redis_url: str, redis_prefix: str
) -> None:
    _setup(home)
    env = {"MLSD_JOB_QUEUE": redis_url, "MLSD_REDIS_PREFIX": redis_prefix}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start(home, port, env, "--no-job-worker")
    worker: subprocess.Popen[bytes] | None = None
    try:
        rows = [sample_transaction(transaction_id=i) for i in range(1, 6)]
        job_id = httpx.post(f"{url}/v1/jobs", json={"rows": rows}, timeout=10).json()["job_id"]
        online = httpx.post(f"{url}/v1/score", json={"transactions": rows}, timeout=10).json()
        held_until = time.monotonic() + 1.0  # a ready server with a worker claims at once
        while time.monotonic() < held_until:
            assert _job(url, job_id)["state"] == "queued", "the server ran a job"
            time.sleep(0.05)
        worker = subprocess.Popen(
            [sys.executable, "-c", SERVE, "worker", "--nice", "5"],
            env={**os.environ, "MLSD_HOME": str(home), **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while (status := _job(url, job_id))["state"] not in ("done", "failed"):
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"the worker never finished the job: {status}"
            time.sleep(0.05)
        assert status["state"] == "done", status
        assert status["attempts"] == 1
        scores = [r["score"] for r in status["results"]]
        assert scores == pytest.approx([r["score"] for r in online["results"]], rel=1e-6)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, worker.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    finally:
        if worker is not None:
            if worker.poll() is None:
                worker.kill()
            worker.wait(timeout=30)
            for stream in (worker.stdout, worker.stderr):
                if stream is not None:
                    stream.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        _stop(server)
    logged = open_reader(Settings(home=home)).read()
    mine = logged[logged["request_id"].str.startswith(f"{job_id}:")]
    assert sorted(mine["request_id"]) == sorted(f"{job_id}:{i}" for i in range(1, 6))
    assert set(mine["endpoint"]) == {"job"}


def test_no_job_worker_needs_a_shared_queue(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlsd.cli.main import run

    for command in (["serve", "--no-job-worker", "--port", str(free_port())], ["worker"]):
        monkeypatch.setattr(sys, "argv", ["mlsd", *command])
        with pytest.raises(SystemExit) as exited:
            run()
        assert exited.value.code == 2
        assert "MLSD_JOB_QUEUE=redis://" in capsys.readouterr().err
