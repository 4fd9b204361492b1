"""The demo step builds every backend from settings, serves, and reports live figures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from mlsd.features.store import FeatureStore
from mlsd.predlog import open_reader
from mlsd.registry import Registry
from mlsd.serving.demo import demo_step
from mlsd.serving.testing import (
    NOW,
    register_tiny_model,
    seed_feature_store,
    tiny_model_artifacts,
)
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
    n = 300
    traffic = pd.DataFrame(  # customers 1, 2 fresh; terminal 7 stale (seed_feature_store)
        {
            "TRANSACTION_ID": range(1, n + 1),
            "TX_DATETIME": [pd.Timestamp(NOW + timedelta(seconds=i)) for i in range(n)],
            "CUSTOMER_ID": [1 + i % 2 for i in range(n)],
            "TERMINAL_ID": [7] * n,
            "TX_AMOUNT": [10.0 + i for i in range(n)],
        }
    )
    waves: list[tuple[int, int]] = []
    console = Console(record=True, width=80)
    figures = demo_step(
        settings,
        seconds=30.0,
        traffic=traffic,
        before_wave=lambda lo, hi: waves.append((lo, hi)),
        clients=2,
        console=console,
    )
    assert figures["requests"] == figures["replayed"] == n  # the traffic ended first
    assert waves == [(i, i + 1) for i in range(n)]  # one terminal: one transaction at a time
    assert figures["failed"] == 0
    assert figures["unavailable"] == 0
    assert figures["expired"] == figures["degraded"] == n  # the stale terminal rows
    assert figures["all_present"] == 0
    assert 0 < figures["client_p50_ms"] <= figures["client_p99_ms"]
    assert figures["url"].startswith("http://127.0.0.1:")
    assert figures["url"] in console.export_text()
    logged = open_reader(settings).read()
    assert len(logged) == figures["requests"]  # flushed on a clean stop: nothing lost
    assert logged["transaction_id"].notna().all(), "every /v1/score row names its transaction"
    assert logged["tx_time"].notna().all()
