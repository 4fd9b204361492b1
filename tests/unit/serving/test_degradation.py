"""A dead online store: scored on request-time features, flagged, breaker opened, never hangs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlsd.errors import UnavailableError
from mlsd.features.store import FeatureStore
from mlsd.serving.app import create_app
from mlsd.serving.testing import sample_transaction
from mlsd.settings import Settings


class DeadStore:
    """The real store's definitions, but every online read times out."""

    def __init__(self, store: FeatureStore) -> None:
        self.view_versions = store.view_versions
        self.reads = 0

    def online_vectors(self, requests: Sequence[Mapping[str, Any]], features: Sequence[str]) -> Any:
        self.reads += 1
        raise UnavailableError("online store read timed out")


def test_scores_degraded_and_opens_the_breaker(
    settings: Settings, store: FeatureStore, build_service: Any, make_client: Any
) -> None:
    dead = DeadStore(store)
    client = make_client(create_app(settings, service=build_service(dead, breaker_failures=3)))
    for i in range(10):
        response = client.post("/v1/score", json=sample_transaction(transaction_id=i))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["degraded"] is True
        result = body["results"][0]
        assert result["degraded"] is True
        assert result["features"]["TX_AMOUNT"] == "request"
        assert result["features"]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == "unavailable"
        assert 0.0 <= result["score"] <= 1.0
    assert dead.reads == 3  # the breaker opened after 3 failures: no more slow reads
    metrics = client.get("/metrics").text
    assert 'mlsd_degraded_total{reason="online_store"} 10.0' in metrics
    assert "mlsd_feature_breaker_open 1.0" in metrics
    assert (
        'mlsd_model_requests_total{model="fraud",role="primary",status="degraded",'
        'variant="champion",version="1"} 10.0' in metrics
    )


def test_fail_mode_answers_503(
    settings: Settings, store: FeatureStore, build_service: Any, make_client: Any
) -> None:
    svc = build_service(DeadStore(store), fail_when_degraded=True)
    client = make_client(create_app(settings, service=svc))
    response = client.post("/v1/score", json=sample_transaction())
    assert response.status_code == 503
    assert response.json()["error"] == "UnavailableError"
