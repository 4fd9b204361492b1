"""Move an alias while clients hammer a real uvicorn: no failed request, switch within 1 s."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from mlsd.features.store import FeatureStore
from mlsd.inference.cache import MemoryCache
from mlsd.inference.host import ModelHost
from mlsd.registry import Registry
from mlsd.serving.app import create_app
from mlsd.serving.server import BackgroundServer
from mlsd.serving.service import ServeOptions, Service
from mlsd.serving.testing import (
    register_tiny_model,
    sample_transaction,
    seed_feature_store,
    tiny_model_artifacts,
)
from mlsd.settings import Settings


@pytest.mark.slow
def test_alias_move_under_load(home: Path) -> None:
    settings = Settings(home=home)
    store = FeatureStore.open(settings)
    views = seed_feature_store(store)
    registry = Registry.open(settings)
    register_tiny_model(registry, tiny_model_artifacts(1), views)
    register_tiny_model(registry, tiny_model_artifacts(2), views)
    registry.set_alias("fraud", "champion", 1, reason="test", actor="test")
    host = ModelHost(Registry.open(settings), served_views=store.view_versions)
    service = Service(
        settings, host, options=ServeOptions(), features=store, cache=MemoryCache(10_000, 60.0)
    )
    seen: list[tuple[float, int, int, float]] = []  # (time, status, version, latency)
    stop = threading.Event()

    def hammer(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5.0) as client:
            i = 0
            while not stop.is_set():
                i += 1
                body = sample_transaction(transaction_id=worker * 1_000_000 + i, amount=float(i))
                started = time.perf_counter()
                response = client.post("/v1/score", json=body)
                took = time.perf_counter() - started
                version = response.json()["results"][0]["version"] if response.is_success else -1
                seen.append((time.monotonic(), response.status_code, version, took))

    with BackgroundServer(create_app(settings, service=service)) as server:
        deadline = time.monotonic() + 30
        while not httpx.get(f"{server.url}/v2/health/ready").is_success:
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.05)
        workers = [threading.Thread(target=hammer, args=(w,)) for w in range(3)]
        for w in workers:
            w.start()
        time.sleep(1.0)
        moved_at = time.monotonic()
        registry.set_alias("fraud", "champion", 2, reason="test", actor="test")
        time.sleep(2.0)
        stop.set()
        for w in workers:
            w.join()
    registry.close()
    store.close()

    assert len(seen) > 100
    assert {status for _, status, _, _ in seen} == {200}, "a request failed during the switch"
    first_v2 = min(t for t, _, version, _ in seen if version == 2)
    assert first_v2 - moved_at < 1.0, f"switch took {first_v2 - moved_at:.2f} s"
    after = [version for t, _, version, _ in seen if t > first_v2 + 0.05]
    assert set(after) == {2}, "an old version answered after the switch"
    around = sorted(took for t, _, _, took in seen if abs(t - moved_at) < 1.0)
    assert around[len(around) // 2] < 0.05, "requests slowed during the switch"
