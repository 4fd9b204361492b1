"""The demo step builds every backend from settings, serves, and reports live figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from mlsd.features.store import FeatureStore
from mlsd.predlog import open_reader
from mlsd.registry import Registry
from mlsd.serving.demo import demo_step
from mlsd.serving.testing import register_tiny_model, seed_feature_store, tiny_model_artifacts
from mlsd.settings import Settings


@pytest.mark.slow
def test_demo_step_serves_traffic_and_logs_it(home: Path) -> None:
    settings = Settings(home=home)
    store = FeatureStore.open(settings)
    views = seed_feature_store(store)
    store.close()
    with Registry.open(settings) as registry:
        register_tiny_model(registry, tiny_model_artifacts(1), views)
        registry.set_alias("fraud", "champion", 1, reason="demo", actor="test")
    console = Console(record=True, width=120)
    figures = demo_step(settings, seconds=2.0, clients=2, console=console)
    assert figures["requests"] > 20
    assert figures["failed"] == 0
    assert figures["degraded"] == 0
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert figures["url"].startswith("http://127.0.0.1:")
    assert figures["url"] in console.export_text()
    logged = open_reader(settings).read()
    assert len(logged) == figures["requests"]  # flushed on a clean stop: nothing lost
    assert logged["transaction_id"].notna().all(), "every /v1/score row names its transaction"
    assert logged["tx_time"].notna().all()
