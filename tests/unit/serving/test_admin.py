"""Admin endpoints: load, unload, move an alias (the host switches at once)."""

from __future__ import annotations

from typing import Any

import pytest

from mlsd.serving.app import create_app
from mlsd.serving.service import Service
from mlsd.serving.testing import sample_transaction
from mlsd.settings import Settings

ADMIN = {"Authorization": "Bearer t0ken"}


@pytest.fixture
def admin(settings: Settings, service: Service, make_client: Any) -> Any:
    return make_client(create_app(settings.model_copy(update={"admin_token": "t0ken"}),
                                  service=service))  # fmt: skip


def test_load_a_pinned_version_then_unload_it(admin: Any) -> None:
    loaded = admin.post("/admin/models/load", json={"model": "fraud/2"}, headers=ADMIN)
    assert loaded.status_code == 200, loaded.text
    assert (loaded.json()["version"], loaded.json()["aliases"]) == (2, [])
    assert admin.get("/v2/models/fraud/versions/2/ready").status_code == 200
    assert 'mlsd_model_loads_total{model="fraud",version="2"} 1.0' in admin.get("/metrics").text
    left = admin.post("/admin/models/unload", json={"model": "fraud/2"}, headers=ADMIN).json()
    assert [m["version"] for m in left] == [1]
    assert admin.get("/v2/models/fraud/versions/2/ready").status_code == 404


def test_moving_the_alias_switches_scoring(admin: Any) -> None:
    before = admin.post("/v1/score", json=sample_transaction()).json()["results"][0]
    moved = admin.post(
        "/admin/aliases", json={"name": "fraud", "alias": "champion", "version": 2}, headers=ADMIN
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["switched"] == 1
    after = admin.post("/v1/score", json=sample_transaction()).json()["results"][0]
    assert (before["version"], after["version"]) == (1, 2)
    assert after["cached"] is False  # the cache never answers for another version


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/admin/models/load", {"model": "fraud/99"}, 404),
        ("/admin/models/load", {"model": "nope@champion"}, 404),
        ("/admin/models/load", {"model": "fraud"}, 422),
        ("/admin/models/unload", {"model": "fraud/2"}, 404),
        ("/admin/aliases", {"name": "fraud", "alias": "champion", "version": 99}, 404),
        ("/admin/aliases", {"name": "fraud", "alias": "champion", "version": 0}, 422),
    ],
)
def test_admin_errors_are_4xx(admin: Any, path: str, body: Any, status: int) -> None:
    response = admin.post(path, json=body, headers=ADMIN)
    assert response.status_code == status, response.text
