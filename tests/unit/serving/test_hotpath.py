"""The plain-ASGI hot path of POST /v1/score answers exactly as the FastAPI route does."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from mlsd.serving.app import create_app
from mlsd.serving.hotpath import header_value, query_value, read_body
from mlsd.serving.service import Service
from mlsd.serving.testing import sample_transaction as tx
from mlsd.settings import Settings

CASES: list[tuple[str, dict[str, Any] | bytes, dict[str, str]]] = [
    ("one", tx(), {}),
    ("batch", {"transactions": [tx(transaction_id=i, customer_id=i % 3) for i in range(4)]}, {}),
    ("missing field", {k: v for k, v in tx().items() if k != "amount"}, {}),
    ("negative amount", tx(amount=-1.0), {}),
    ("not json", b'{"transaction_id": 1,', {}),
    ("unknown model", tx(), {"model": "nope"}),
    ("bad model name", tx(), {"model": "../x"}),
    ("empty batch", {"transactions": []}, {}),
]


def _stable(body: dict[str, Any]) -> dict[str, Any]:
    """A response body without what differs by call (timing, request id, cache hit)."""
    results = [{k: v for k, v in r.items() if k != "cached"} for r in body["results"]]
    return {"results": results, "degraded": body["degraded"]}


@pytest.mark.parametrize(("name", "body", "params"), CASES, ids=[c[0] for c in CASES])
def test_hot_path_answers_like_the_fastapi_route(
    settings: Settings,
    service: Service,
    make_client: Any,
    name: str,
    body: dict[str, Any] | bytes,
    params: dict[str, str],
) -> None:
    hot = make_client(create_app(settings, service=service))
    routed = make_client(create_app(settings, service=service, hot_path=False))
    kwargs: dict[str, Any] = {"params": params}
    if isinstance(body, bytes):
        kwargs.update(content=body, headers={"content-type": "application/json"})
    else:
        kwargs["json"] = body
    a = hot.post("/v1/score", **kwargs)
    b = routed.post("/v1/score", **kwargs)
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.headers["content-type"] == b.headers["content-type"] == "application/json"
    if a.status_code == 200:
        assert _stable(a.json()) == _stable(b.json())
        assert a.headers["x-request-id"] == a.json()["request_id"]
    else:
        assert 400 <= a.status_code < 500
        assert a.json() == b.json()
        assert a.json()["field"]


def test_hot_path_is_timed_under_its_route_label(client: Any) -> None:
    assert client.post("/v1/score", json=tx()).status_code == 200
    assert client.post("/v1/score", json=tx(amount=-1.0)).status_code == 422
    text = client.get("/metrics").text
    ok = 'mlsd_request_duration_seconds_count{method="POST",route="/v1/score",status="200"} 1.0'
    bad = 'mlsd_request_duration_seconds_count{method="POST",route="/v1/score",status="422"} 1.0'
    assert ok in text
    assert bad in text


def test_hot_path_keeps_security_in_front(
    settings: Settings, service: Service, make_client: Any
) -> None:
    locked = settings.model_copy(update={"api_key": "k1", "max_body_bytes": 2048})
    client = make_client(create_app(locked, service=service))
    assert client.post("/v1/score", json=tx()).status_code == 401
    assert client.post("/v1/score", json=tx(), headers={"x-api-key": "k1"}).status_code == 200
    big = {"transactions": [tx(transaction_id=i) for i in range(40)]}
    response = client.post("/v1/score", json=big, headers={"x-api-key": "k1"})
    assert response.status_code == 413
    assert response.json()["field"] == "body"


def test_unexpected_failure_is_a_json_500_and_logged(
    client: Any, service: Service, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("model runtime exploded")

    monkeypatch.setattr(service.pipeline, "score", broken)
    with caplog.at_level(logging.ERROR, logger="mlsd.serving.hotpath"):
        response = client.post("/v1/score", json=tx(), headers={"x-request-id": "r-500"})
    assert response.status_code == 500
    assert response.json()["error"] == "MlsdError"
    assert "exploded" not in response.text  # details stay in the server log
    assert response.headers["x-request-id"] == "r-500"
    assert any("r-500" in record.getMessage() for record in caplog.records)


def test_read_body_joins_chunks_and_notices_a_departed_client() -> None:
    async def run(messages: list[dict[str, Any]]) -> bytes:
        queue = list(messages)

        async def receive() -> dict[str, Any]:
            return queue.pop(0)

        return await read_body(receive)

    chunks = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]
    assert asyncio.run(run(chunks)) == b"abcd"
    from mlsd.serving.hotpath import ClientGone

    with pytest.raises(ClientGone):
        asyncio.run(run([chunks[0], {"type": "http.disconnect"}]))


def test_query_and_header_values() -> None:
    assert query_value(b"", "model") is None
    assert query_value(b"model=a&model=b&x=1", "model") == "b"  # last wins, as Starlette's
    assert query_value(b"model=fraud%2Dv2", "model") == "fraud-v2"
    assert query_value(b"other=1", "model") is None
    scope = {"headers": [(b"x-request-id", b"abc"), (b"host", b"h")]}
    assert header_value(scope, b"x-request-id") == "abc"
    assert header_value(scope, b"authorization") == ""


def test_score_before_the_models_are_loaded_is_503_not_404(
    settings: Settings, store: Any, build_service: Any, make_client: Any
) -> None:
    service = build_service(store, load=False)
    service.loaded = True  # the lifespan must not load the models: we ask before they are
    client = make_client(create_app(settings, service=service))
    service.loaded = False
    response = client.post("/v1/score", json=tx())
    assert response.status_code == 503, response.text
    assert response.json()["field"] == "model"
    assert "still loading" in response.json()["message"]
    service.load_error = "registry unreachable"
    assert "registry unreachable" in client.post("/v1/score", json=tx()).json()["message"]
    service.load_all()
    assert client.post("/v1/score", json=tx()).status_code == 200
    assert client.post("/v1/score", json=tx(), params={"model": "nope"}).status_code == 404
