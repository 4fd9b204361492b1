"""The service on a real Redis online store, and on a dead one (degraded, fast, breaker open)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from mlsd.features.store import FeatureStore
from mlsd.registry import Registry
from mlsd.serving.app import create_app
from mlsd.serving.server import BackgroundServer
from mlsd.serving.service import ServeOptions
from mlsd.serving.testing import (
    register_tiny_model,
    sample_transaction,
    seed_feature_store,
    tiny_model_artifacts,
)
from mlsd.settings import Settings


def _prepare(settings: Settings, seed_with: Settings) -> None:
    store = FeatureStore.open(seed_with)
    views = seed_feature_store(store)
    store.close()
    with Registry.open(settings) as registry:
        register_tiny_model(registry, tiny_model_artifacts(1), views)
        registry.set_alias("fraud", "champion", 1, reason="test", actor="test")


def _serve(settings: Settings) -> BackgroundServer:
    server = BackgroundServer(create_app(settings, options=ServeOptions(breaker_failures=3)))
    server.start()
    deadline = time.monotonic() + 30
    while not httpx.get(f"{server.url}/v2/health/ready").is_success:
        assert time.monotonic() < deadline, "not ready"
        time.sleep(0.05)
    return server


@pytest.mark.redis
def test_scores_with_features_from_redis(home: Path, redis_url: str, redis_prefix: str) -> None:
    settings = Settings(home=home, online_store=redis_url, redis_prefix=redis_prefix)
    _prepare(settings, settings)
    server = _serve(settings)
    try:
        body = httpx.post(f"{server.url}/v1/score", json=sample_transaction()).json()
    finally:
        server.stop()
    status = body["results"][0]["features"]
    assert body["degraded"] is False
    assert status["CUSTOMER_ID_NB_TX_7DAY_WINDOW"] == "present"
    assert status["TERMINAL_ID_RISK_7DAY_WINDOW"] == "expired"


@pytest.mark.slow
def test_dead_online_store_degrades_fast(home: Path) -> None:
    dead = Settings(home=home, online_store="redis://127.0.0.1:9/0")  # nothing listens on 9
    _prepare(dead, Settings(home=home))
    server = _serve(dead)
    took: list[float] = []
    try:
        with httpx.Client(base_url=server.url, timeout=5.0) as client:
            for i in range(20):
                started = time.perf_counter()
                response = client.post("/v1/score", json=sample_transaction(transaction_id=i))
                took.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
                assert response.json()["degraded"] is True
            metrics = client.get("/metrics").text
    finally:
        server.stop()
    assert max(took) < 1.0, "a request waited on the dead store"
    assert sorted(took)[10] < 0.05, "requests keep waiting: the breaker did not open"
    assert "mlsd_feature_breaker_open 1.0" in metrics
    assert 'mlsd_degraded_total{reason="online_store"} 20.0' in metrics
