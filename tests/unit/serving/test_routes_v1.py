"""POST /v1/score: features, model, verdicts, cache, and bad input answered with 4xx."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mlsd.serving.testing import sample_transaction as tx


def test_scores_one_transaction_with_stored_and_request_features(client: Any) -> None:
    response = client.post("/v1/score", json=tx())
    assert response.status_code == 200, response.text
    body = response.json()
    (result,) = body["results"]
    assert 0.0 <= result["score"] <= 1.0
    assert result["decision"] == ("fraud" if result["score"] >= 0.5 else "legit")
    assert (result["model"], result["version"], result["threshold"]) == ("fraud", 1, 0.5)
    status = result["features"]
    assert status["TX_AMOUNT"] == "request"
    assert status["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == "present"
    assert status["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == "expired"
    assert body["degraded"] is False
    assert body["latency_ms"] > 0
    assert response.headers["x-request-id"] == body["request_id"]


def test_a_request_older_than_its_stored_features_is_future_never_present(client: Any) -> None:
    """A 1970 timestamp must not be served features computed from later transactions."""
    result = client.post("/v1/score", json=tx(timestamp="1970-01-01T00:00:00Z")).json()
    status = result["results"][0]["features"]
    assert status["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == "future"
    assert status["TERMINAL_ID_NB_TX_1DAY_WINDOW"] == "future"
    assert status["TX_AMOUNT"] == "request"
    assert "present" not in status.values()


def test_unknown_customer_is_missing_not_an_error(client: Any) -> None:
    result = client.post("/v1/score", json=tx(customer_id=999)).json()["results"][0]
    assert result["features"]["CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW"] == "missing"


def test_batch_matches_single_scores_and_reuses_the_cache(client: Any) -> None:
    txs = [tx(transaction_id=i, amount=float(10 * i), customer_id=i % 3) for i in range(1, 6)]
    batch = client.post("/v1/score", json={"transactions": txs}).json()["results"]
    singles = [client.post("/v1/score", json=t).json()["results"][0] for t in txs]
    assert [r["transaction_id"] for r in batch] == [1, 2, 3, 4, 5]
    for b, s in zip(batch, singles, strict=True):
        assert math.isclose(b["score"], s["score"], rel_tol=1e-6)
        assert b["cached"] is False
        assert s["cached"] is True  # same features, same version: served from the cache


def test_request_id_header_is_echoed(client: Any) -> None:
    response = client.post("/v1/score", json=tx(), headers={"X-Request-ID": "abc-123"})
    assert response.json()["request_id"] == "abc-123"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in tx().items() if k != "amount"}, "amount"),
        (tx(amount=-1.0), "amount"),
        (tx(amount="12"), "amount"),
        (tx(customer_id="abc"), "customer_id"),
        (tx(customer_id=-3), "customer_id"),
        (tx(timestamp="2026-11-20T12:00:00"), "timestamp"),
        (tx(timestamp="yesterday"), "timestamp"),
        (tx(timestamp="0001-01-01T00:00:00+00:01"), "timestamp"),
        (tx(timestamp="9999-12-31T23:59:59-01:00"), "timestamp"),
        (tx(timestamp="1969-12-31T23:59:59Z"), "timestamp"),
        (tx(extra=1), "extra"),
        ({"transactions": []}, "transactions"),
        ({"transactions": [tx(), tx(amount=-5)]}, "transactions.1.amount"),
    ],
)
def test_bad_input_is_422_naming_the_field(client: Any, body: Any, field: str) -> None:
    response = client.post("/v1/score", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["error"] == "ValidationError"


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_amount_is_422(client: Any, raw: str) -> None:
    text = (
        '{"transaction_id":1,"customer_id":1,"terminal_id":7,'
        f'"amount":{raw},"timestamp":"2026-11-20T12:00:00Z"}}'
    )
    response = client.post("/v1/score", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "amount"


def test_malformed_json_is_422(client: Any) -> None:
    response = client.post(
        "/v1/score", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_unknown_model_is_404(client: Any) -> None:
    response = client.post("/v1/score?model=nope", json=tx())
    assert response.status_code == 404
    assert response.json() == {
        "error": "NotFoundError",
        "message": "no endpoint serves model 'nope'",
        "field": "model",
    }
