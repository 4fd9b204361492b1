"""End to end: `/v1/score` decides `fraud` exactly from the threshold stored at registration."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlsd.features.store import FeatureStore
from mlsd.registry import DecisionThreshold, Registry
from mlsd.serving.app import create_app
from mlsd.serving.testing import register_tiny_model
from mlsd.serving.testing import sample_transaction as tx
from mlsd.settings import Settings
from tests.unit.serving.conftest import make_service

TXS = [tx(transaction_id=1, amount=42.5), tx(transaction_id=2, amount=180.0, customer_id=2)]


def _score(settings: Settings, registry: Registry, store: FeatureStore, make_client: Any) -> Any:
    """Decisions of a fresh service on fraud@champion: one transaction, then the batch."""
    service = make_service(settings, registry, store)
    try:
        client = make_client(create_app(settings, service=service))
        single = client.post("/v1/score", json=TXS[0])
        batch = client.post("/v1/score", json={"transactions": TXS})
        assert single.status_code == batch.status_code == 200, (single.text, batch.text)
        return single.json()["results"][0], batch.json()["results"]
    finally:
        service.close()


def test_the_decision_flips_exactly_at_the_stored_threshold(
    settings: Settings,
    registry: Registry,
    store: FeatureStore,
    artifacts: dict[int, dict[str, bytes]],
    make_client: Any,
) -> None:
    first, _ = _score(settings, registry, store, make_client)
    score = first["score"]  # fraud/1's float32 score, exact in JSON
    above = float(np.nextafter(np.float32(score), np.float32(np.inf)))  # the next float32 up
    views = store.view_versions()
    for threshold, decision in ((score, "fraud"), (above, "legit")):
        mv = register_tiny_model(registry, artifacts[1], views, threshold=threshold)
        assert registry.get("fraud", mv.version).threshold == DecisionThreshold(
            value=threshold, policy="manual"
        )
        registry.set_alias("fraud", "champion", mv.version, reason="test", actor="test")
        single, batch = _score(settings, registry, store, make_client)
        assert (single["version"], single["score"], single["threshold"]) == (
            mv.version,
            score,
            threshold,
        )
        assert single["decision"] == decision
        assert batch[0]["decision"] == decision  # the batch path decides alike
        assert batch[1]["decision"] == ("fraud" if batch[1]["score"] >= threshold else "legit")
