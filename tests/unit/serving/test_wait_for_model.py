"""A server started before the first model waits for it, then serves it (no restart).

The trap: `mlsd serve` before `mlsd train --promote` answered 503 forever, even after the
alias appeared.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlsd.errors import IntegrityError
from mlsd.features.store import FeatureStore
from mlsd.inference.host import ModelHost
from mlsd.registry import ModelVersion, Registry
from mlsd.serving.app import create_app
from mlsd.serving.service import ServeOptions, Service
from mlsd.serving.testing import register_tiny_model
from mlsd.serving.testing import sample_transaction as tx
from mlsd.settings import Settings


def _until(condition: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_the_service_loads_the_model_once_the_alias_appears(
    settings: Settings,
    store: FeatureStore,
    artifacts: dict[int, dict[str, bytes]],
    make_client: Any,
) -> None:
    registry = Registry.open(settings)
    host = ModelHost(registry, served_views=store.view_versions, poll_interval_s=0.1)
    options = ServeOptions(load_retry_s=0.02, watch_aliases=False)
    service = Service(settings, host, options=options, features=store)
    service.owned.append(registry)  # closed with the app
    client = make_client(create_app(settings, service=service))
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503
    _until(lambda: service.load_error is not None)  # the first load runs in a thread
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503
    assert "fraud" in ready.json()["error"]
    assert client.post("/v1/score", json=tx()).status_code == 503
    version = register_tiny_model(registry, artifacts[1], store.view_versions())
    registry.set_alias("fraud", "champion", version.version, reason="t", actor="t")
    _until(lambda: service.ready)
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200
    assert "error" not in ready.json()
    assert client.post("/v1/score", json=tx()).status_code == 200


def _good_and_corrupt(
    settings: Settings, store: FeatureStore, artifacts: dict[int, dict[str, bytes]]
) -> tuple[Registry, ModelVersion, ModelVersion]:
    """A registry holding a version that loads and one whose ONNX model is garbage."""
    from mlsd.registry.formats import ONNX_ARTIFACT

    registry = Registry.open(settings)
    good = register_tiny_model(registry, artifacts[1], store.view_versions())
    corrupt = register_tiny_model(registry, {ONNX_ARTIFACT: b"not a model"}, store.view_versions())
    return registry, good, corrupt


def test_an_alias_on_a_version_that_does_not_load_is_retried_until_it_moves(
    settings: Settings,
    store: FeatureStore,
    artifacts: dict[int, dict[str, bytes]],
    make_client: Any,
) -> None:
    """Started while the alias points at a corrupt version, the server used to answer 503
    for good (the first load was final, the watcher never started) though liveness was OK."""
    registry, good, corrupt = _good_and_corrupt(settings, store, artifacts)
    registry.set_alias("fraud", "champion", corrupt.version, reason="bad release", actor="t")
    host = ModelHost(registry, served_views=store.view_versions, poll_interval_s=0.1)
    options = ServeOptions(load_retry_s=0.02, load_retry_max_s=0.1)
    service = Service(settings, host, options=options, features=store)
    service.owned.append(registry)
    client = make_client(create_app(settings, service=service))
    _until(lambda: service.load_error is not None)
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503
    assert "ONNX" in ready.json()["error"]
    registry.set_alias("fraud", "champion", good.version, reason="rollback", actor="t")
    _until(lambda: service.ready)
    answer = client.post("/v1/score", json=tx())
    assert answer.status_code == 200
    assert answer.json()["results"][0]["version"] == good.version


def test_a_stopped_wait_ends_the_retries(settings: Settings, store: FeatureStore) -> None:
    registry = Registry.open(settings)
    host = ModelHost(registry, served_views=store.view_versions)
    service = Service(settings, host, options=ServeOptions(load_retry_s=30.0), features=store)
    stop = threading.Event()
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(service.load_when_available(stop)))
    worker.start()
    _until(lambda: service.load_error is not None)
    stop.set()  # wakes the 30 s wait at once
    worker.join(timeout=30)
    assert result == [False]
    service.close()
    registry.close()


def test_serve_says_it_is_waiting_and_a_busy_port_exits_6(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = "from mlsd.cli.main import run; run()"
        out = subprocess.run(
            [sys.executable, "-c", code, "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 6, out.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in " ".join(out.stderr.split())
    assert "Traceback" not in out.stderr


def test_serve_before_any_model_prints_waiting(home: Path) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    code = "from mlsd.cli.main import run; run()"
    with subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", str(port), "--no-tune"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            second = proc.stdout.readline()
        finally:
            proc.terminate()
            proc.communicate(timeout=60)
    assert first.startswith("waiting for fraud@champion"), first
    assert "answers 503 until it appears" in first
    assert "serving" not in second.split(":")[0]
    assert f"health http://127.0.0.1:{port}/v2/health/ready" in second
    assert f"metrics http://127.0.0.1:{port}/metrics" in second


def test_an_alias_moved_to_a_version_that_does_not_load_is_reported_as_lagging(
    settings: Settings,
    store: FeatureStore,
    artifacts: dict[int, dict[str, bytes]],
    make_client: Any,
) -> None:
    """The old version keeps serving; readiness and `mlsd_alias_lagging` say it is behind."""
    registry, good, corrupt = _good_and_corrupt(settings, store, artifacts)
    registry.set_alias("fraud", "champion", good.version, reason="first", actor="t")
    host = ModelHost(registry, served_views=store.view_versions, poll_interval_s=3600)
    service = Service(settings, host, options=ServeOptions(watch_aliases=False), features=store)
    service.owned.append(registry)
    client = make_client(create_app(settings, service=service))
    _until(lambda: service.ready)
    registry.set_alias("fraud", "champion", corrupt.version, reason="bad release", actor="t")
    with pytest.raises(IntegrityError):
        host.refresh()  # what the watcher thread does every poll (it logs the error)
    ready = client.get("/v2/health/ready").json()
    assert ready["ready"] is True
    assert ready["lagging"][0]["serving"] == good.version
    assert ready["lagging"][0]["alias"] == corrupt.version
    metrics = client.get("/metrics").text
    assert 'mlsd_alias_lagging{alias="champion",model="fraud"} 1.0' in metrics
    assert client.post("/v1/score", json=tx()).json()["results"][0]["version"] == good.version
    registry.set_alias("fraud", "champion", good.version, reason="rollback", actor="t")
    assert host.refresh() == 0
    assert "lagging" not in client.get("/v2/health/ready").json()
    assert 'mlsd_alias_lagging{alias="champion",model="fraud"} 0.0' in client.get("/metrics").text
