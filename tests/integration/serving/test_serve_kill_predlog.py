"""`mlsd serve` killed with SIGKILL under load loses no prediction it had answered.

A real server process on a scratch data folder takes concurrent `POST /v1/score`
requests; once a few hundred are answered it gets `kill -9` with requests in flight.
The next writer on the log replays the dead server's journal: every request id answered
200 must then be in the log, none twice. The check holds whatever the timing: with a
60 s flush interval nothing reaches Parquet before the kill (all from the journal), with
50 ms most of it does (the rest from the journal, none stored twice); the same on
PostgreSQL. The server runs the Parquet log's default writer, a child process
(`mlsd.predlog.writer`), which the kill leaves to finish its write and exit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mlsd.features.store import FeatureStore
from mlsd.predlog import journal_folder, make_prediction_log, open_reader
from mlsd.predlog.journal import claim_dead
from mlsd.registry import Registry
from mlsd.serving.server import free_port
from mlsd.serving.testing import (
    register_tiny_model,
    sample_transaction,
    seed_feature_store,
    tiny_model_artifacts,
)
from mlsd.settings import Settings

SERVE = "from mlsd.cli.main import run; run()"
ANSWERED_BEFORE_KILL = 400
CLIENTS = 16
MAX_REQUESTS = 20_000  # bounded traffic, whatever happens
MAX_SECONDS = 60.0


def _setup(home: Path) -> None:
    settings = Settings(home=home)
    store = FeatureStore.open(settings)
    views = seed_feature_store(store)
    store.close()
    with Registry.open(settings) as registry:
        register_tiny_model(registry, tiny_model_artifacts(1), views)
        registry.set_alias("fraud", "champion", 1, reason="test", actor="test")


def _start(home: Path, port: int, flush_seconds: float, log_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MLSD_HOME": str(home),
        "MLSD_PREDICTION_LOG": log_url,
        "MLSD_PREDICTION_LOG_FLUSH_SECONDS": str(flush_seconds),
    }
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
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
        time.sleep(0.1)
    server.kill()
    server.wait(timeout=30)
    server.stderr.close()  # type: ignore[union-attr]
    raise AssertionError("the server did not get ready in 90 s")


async def _load_then_kill(url: str, server: subprocess.Popen[bytes]) -> tuple[set[str], int]:
    """Concurrent requests until ANSWERED_BEFORE_KILL are answered, then SIGKILL while the
    clients keep sending; (ids answered 200, requests sent)."""
    answered: set[str] = set()
    sent = 0
    killed = asyncio.Event()
    started = time.monotonic()
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)

    async def client(worker: int, http: httpx.AsyncClient) -> None:
        nonlocal sent
        i = 0
        while sent < MAX_REQUESTS and time.monotonic() - started < MAX_SECONDS:
            rid = f"kill-{worker}-{i}"
            i += 1
            sent += 1
            body = sample_transaction(transaction_id=worker * 1_000_000 + i)
            try:
                response = await http.post("/v1/score", json=body, headers={"x-request-id": rid})
            except httpx.HTTPError:
                if killed.is_set():
                    return  # the server is gone
                await asyncio.sleep(0.01)
                continue
            if response.status_code == 200:
                assert response.headers["x-request-id"] == rid
                answered.add(rid)
            if len(answered) >= ANSWERED_BEFORE_KILL and not killed.is_set():
                server.send_signal(signal.SIGKILL)  # the others' requests are in flight
                killed.set()

    async with httpx.AsyncClient(base_url=url, timeout=10.0, limits=limits) as http:
        await asyncio.gather(*(client(w, http) for w in range(CLIENTS)))
    return answered, sent


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "flush_seconds"),
    [
        ("parquet", 60.0),
        ("parquet", 0.05),
        pytest.param("postgres", 0.05, marks=pytest.mark.postgres),
    ],
)
def test_kill_9_under_load_loses_no_answered_prediction(
    home: Path, backend: str, flush_seconds: float, request: pytest.FixtureRequest
) -> None:
    log_url = ""
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
        log_url = f"{url}?schema={request.getfixturevalue('postgres_schema')}"
    _setup(home)
    port = free_port()
    server = _start(home, port, flush_seconds, log_url)
    try:
        answered, sent = asyncio.run(_load_then_kill(f"http://127.0.0.1:{port}", server))
    finally:
        server.kill()
        server.wait(timeout=30)
        server.stderr.close()  # type: ignore[union-attr]
    assert server.returncode == -signal.SIGKILL
    assert len(answered) >= ANSWERED_BEFORE_KILL, f"only {len(answered)} of {sent} answered"
    settings = Settings(home=home, prediction_log=log_url)
    # the Parquet log's writer process may finish a write after its server's kill; it exits
    # at the end of its pipe, and claim_dead waits for that (then `before` is all stored)
    for dead in claim_dead(journal_folder(settings)):
        dead.release()
    before = set(open_reader(settings).read()["request_id"])
    if flush_seconds == 60.0:
        assert before == set(), "nothing flushed before the kill: the journal holds it all"

    plog = make_prediction_log(settings)  # the next writer replays the dead one's journal
    replayed = plog.stats().replayed
    plog.close()
    logged = open_reader(settings).read()["request_id"]
    assert logged.is_unique, "a replayed record was stored twice"
    missing = answered - set(logged)
    assert not missing, f"{len(missing)} answered predictions lost, e.g. {sorted(missing)[:3]}"
    assert replayed == len(logged) - len(before)
    if flush_seconds == 60.0:  # at 0.05 s a busy machine may have stored everything in time
        assert replayed > 0
