"""One JSON error shape for the REST API (`ErrorBody`: error, message, field), FastAPI's own
answers (no route, wrong method, unreadable JSON) included, and declared in the spec."""

from __future__ import annotations

from typing import Any

import pytest

from mlsd.serving.app import create_app
from mlsd.serving.service import Service
from mlsd.settings import Settings
from tests.unit.serving.conftest import test_client as starlette_client

KEYS = {"error", "message", "field"}


@pytest.fixture
def admin(settings: Settings, service: Service, make_client: Any) -> Any:
    app = create_app(settings.model_copy(update={"admin_token": "t"}), service=service)
    client = make_client(app)
    client.headers["Authorization"] = "Bearer t"
    return client


def test_no_route_is_a_not_found_error(admin: Any) -> None:
    response = admin.get("/v1/nothing")
    assert response.status_code == 404
    assert response.json() == {
        "error": "NotFoundError",
        "message": "no route /v1/nothing",
        "field": None,
    }


def test_wrong_method_is_405_with_allow(admin: Any) -> None:
    response = admin.get("/v1/score")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == {
        "error": "MethodNotAllowedError",
        "message": "GET is not allowed on /v1/score",
        "field": None,
    }


@pytest.mark.parametrize("path", ["/admin/models/load", "/admin/aliases", "/v1/jobs"])
@pytest.mark.parametrize("raw", [b"{nope", b"'\xc1\xd0/%", b""], ids=["syntax", "bytes", "empty"])
def test_unreadable_json_is_a_validation_error_on_body(admin: Any, path: str, raw: bytes) -> None:
    response = admin.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == KEYS
    assert (body["error"], body["field"]) == ("ValidationError", "body")


def test_fastapi_validation_errors_name_the_field(admin: Any) -> None:
    response = admin.post("/admin/aliases", json={"name": "fraud", "alias": "x", "version": 0})
    assert response.status_code == 422
    assert response.json()["field"] == "version"
    assert set(response.json()) == KEYS


def test_a_bug_answers_500_in_the_same_shape(settings: Settings, service: Service) -> None:
    from mlsd.serving.testing import sample_transaction

    app = create_app(settings, service=service, hot_path=False)

    async def broken(request: Any) -> Any:
        raise RuntimeError("boom")

    service.pipeline.score = broken  # type: ignore[method-assign]
    quiet = starlette_client()(app, raise_server_exceptions=False)
    with quiet:
        response = quiet.post("/v1/score", json=sample_transaction())
    assert response.status_code == 500
    assert response.json() == {
        "error": "MlsdError",
        "message": "internal error; see the server log",
        "field": None,
    }


def test_the_spec_declares_the_error_shapes(admin: Any) -> None:
    spec = admin.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert set(schemas["ErrorBody"]["properties"]) == KEYS
    assert set(schemas["V2ErrorBody"]["properties"]) == {"error", "field"}
    assert "HTTPValidationError" not in schemas  # FastAPI's own shape is never answered
    ref = "#/components/schemas/{}"
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            if "404" not in responses:
                continue
            kind = "V2ErrorBody" if path.startswith("/v2") else "ErrorBody"
            for code in ("404", "405", "422"):
                schema = responses[code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": ref.format(kind)}, (method, path, code)
