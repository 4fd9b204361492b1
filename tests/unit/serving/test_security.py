"""Bearer token for admin, scoring key for the rest, open health and metrics, body limit."""

from __future__ import annotations

from typing import Any

import pytest

from mlsd.serving.app import create_app
from mlsd.serving.service import Service
from mlsd.serving.testing import sample_transaction
from mlsd.settings import Settings


@pytest.fixture
def secured(settings: Settings, service: Service, make_client: Any) -> Any:
    locked = settings.model_copy(
        update={"api_key": "k3y", "admin_token": "adm1n", "max_body_bytes": 4096}
    )
    return make_client(create_app(locked, service=service))


def test_health_and_metrics_are_open(secured: Any) -> None:
    for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):
        assert secured.get(path).status_code == 200, path


@pytest.mark.parametrize("path", ["/openapi.json", "/v2/models/fraud", "/v2"])
def test_everything_else_needs_the_key(secured: Any, path: str) -> None:
    denied = secured.get(path)
    assert denied.status_code == 401
    assert denied.json()["field"] == "x-api-key"
    assert secured.get(path, headers={"X-API-Key": "k3y"}).status_code == 200
    assert secured.get(path, headers={"Authorization": "Bearer k3y"}).status_code == 200
    assert secured.get(path, headers={"X-API-Key": "k3y-wrong"}).status_code == 401


def test_scoring_with_and_without_the_key(secured: Any) -> None:
    assert secured.post("/v1/score", json=sample_transaction()).status_code == 401
    ok = secured.post("/v1/score", json=sample_transaction(), headers={"X-API-Key": "k3y"})
    assert ok.status_code == 200


def test_admin_needs_the_admin_token_not_the_scoring_key(secured: Any) -> None:
    assert secured.get("/admin/models", headers={"X-API-Key": "k3y"}).status_code == 401
    assert secured.get("/admin/models", headers={"Authorization": "Bearer k3y"}).status_code == 401
    ok = secured.get("/admin/models", headers={"Authorization": "Bearer adm1n"})
    assert ok.status_code == 200
    assert [(m["name"], m["version"], m["aliases"]) for m in ok.json()] == [
        ("fraud", 1, ["champion"])
    ]


def test_admin_is_off_without_a_token(client: Any) -> None:
    response = client.get("/admin/models", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 401
    assert "MLSD_ADMIN_TOKEN" in response.json()["message"]


def test_oversized_body_is_413_declared_or_streamed(secured: Any) -> None:
    key = {"X-API-Key": "k3y", "content-type": "application/json"}
    big = b'{"transactions": [' + b" " * 5000 + b"]}"
    declared = secured.post("/v1/score", content=big, headers=key)
    assert declared.status_code == 413
    assert declared.json()["field"] == "body"

    def chunks() -> Any:
        yield big[:3000]
        yield big[3000:]

    streamed = secured.post("/v1/score", content=chunks(), headers=key)
    assert streamed.status_code == 413
    small = secured.post("/v1/score", content=iter([b'{"a"', b": 1}"]), headers=key)
    assert small.status_code == 422  # read through the buffer, then validated


def test_refusals_are_counted_in_the_request_metrics(secured: Any) -> None:
    """401 and 413 are answered before the metrics middleware: counted all the same, by the
    route template the request would have reached."""
    key = {"X-API-Key": "k3y", "content-type": "application/json"}
    assert secured.post("/v1/score", json=sample_transaction()).status_code == 401
    assert secured.get("/v2/models/fraud").status_code == 401
    assert secured.get("/admin/models").status_code == 401
    assert secured.get("/nowhere").status_code == 401
    big = b'{"transactions": [' + b" " * 5000 + b"]}"
    assert secured.post("/v1/score", content=big, headers=key).status_code == 413
    text = secured.get("/metrics").text
    for needle in (
        'mlsd_request_duration_seconds_count{method="POST",route="/v1/score",status="401"} 1.0',
        'mlsd_request_duration_seconds_count{method="GET",route="/v2/models/{name}",status="401"}',
        'mlsd_request_duration_seconds_count{method="GET",route="/admin/models",status="401"}',
        'mlsd_request_duration_seconds_count{method="GET",route="unmatched",status="401"} 1.0',
        'mlsd_request_duration_seconds_count{method="POST",route="/v1/score",status="413"} 1.0',
    ):
        assert needle in text, needle


def test_refusals_on_v2_take_the_open_inference_protocol_shape(secured: Any) -> None:
    denied = secured.get("/v2/models/fraud")
    assert denied.status_code == 401
    assert denied.json() == {
        "error": "missing or wrong API key (X-API-Key header)",
        "field": "x-api-key",
    }
    rest = secured.get("/admin/models")
    assert rest.json()["error"] == "AuthError"  # REST keeps ErrorBody: kind, message, field
