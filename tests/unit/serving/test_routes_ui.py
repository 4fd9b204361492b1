"""The dashboard page's routes: `/ui/data` from a served app's real state, access rules,
the page and plotly.js served locally, and 405s with their Allow header."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlsd.errors import UnavailableError
from mlsd.features.store import FeatureStore
from mlsd.inference.observers import ScoringRequest
from mlsd.registry import Registry
from mlsd.registry.profile import PROFILE_ARTIFACT, build_profile, profile_bytes
from mlsd.serving.app import create_app, install_drift
from mlsd.serving.service import ServeOptions, Service
from mlsd.serving.testing import (
    FEATURES,
    register_tiny_model,
    sample_transaction,
    tiny_model_artifacts,
)
from mlsd.settings import Settings
from tests.unit.serving.conftest import make_service


def _no_nan(text: str) -> Any:
    def refuse(value: str) -> None:
        raise AssertionError(f"{value} in the JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def monitored(home: Path, tmp_path: Path) -> Iterator[Service]:
    """fraud/2 (with a reference profile) as champion, live drift on 500-row windows and
    one alert rule on feature PSI."""
    settings = Settings(home=home)
    store = FeatureStore.open(settings)
    store.apply()
    files = tiny_model_artifacts(1)
    rows = np.random.default_rng(5).normal(size=(3000, len(FEATURES))).astype(np.float32)
    profile = build_profile(
        rows, list(FEATURES), scores=np.random.default_rng(6).uniform(size=3000)
    )
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "rules:\n  - {name: feature-drift, metric: psi, above: 0.25, severity: critical}\n"
    )
    with Registry.open(settings) as registry:
        views = store.view_versions()
        register_tiny_model(registry, files, views)  # v1: no profile
        register_tiny_model(registry, {**files, PROFILE_ARTIFACT: profile_bytes(profile)}, views)
        registry.set_alias("fraud", "champion", 2, reason="test", actor="test")
        service = make_service(settings, registry, store, load=False, dashboard_sample_s=60.0)
        options = ServeOptions(drift_window_rows=500, alert_rules=str(rules))
        service.owned.insert(0, install_drift(service, options))
        service.load_all()
        yield service
        service.close()
    store.close()


def _shifted(n: int) -> np.ndarray:
    rows = np.random.default_rng(7).normal(size=(n, len(FEATURES))).astype(np.float32)
    rows[:, 0] += 3.0
    return rows


def test_data_holds_traffic_latency_drift_alerts_and_models(
    monitored: Service, make_client: Any
) -> None:
    client = make_client(create_app(monitored.settings, service=monitored))
    dashboard = monitored.dashboard
    assert dashboard is not None
    first = _no_nan(client.get("/ui/data").text)
    assert first["traffic"]["totals"]["requests"] == 0
    assert first["performance"] is None  # no provider: the page says "no labels yet"
    for i in range(12):
        answer = client.post("/v1/score", json=sample_transaction(transaction_id=i))
        assert answer.status_code == 200, answer.text
    client.get("/v1/score")  # a 405: an HTTP 4xx, not a scoring answer
    dashboard.history.sample()
    for chunk in np.array_split(_shifted(500), 5):
        monitored.pipeline.score_sync(ScoringRequest("t", "v2", values=chunk, model="fraud"))
    assert monitored.drift is not None
    monitored.drift.drain()  # the monitor's thread may have drained some: same result
    dashboard.history.sample()

    response = client.get("/ui/data")
    assert response.status_code == 200
    data = _no_nan(response.text)
    traffic = data["traffic"]
    assert traffic["totals"]["requests"] == 17  # 12 HTTP requests + 5 batches
    assert traffic["totals"]["rows"] == 512
    assert traffic["totals"]["http"]["2xx"] >= 12  # the page's own polling not counted
    assert traffic["totals"]["http"]["4xx"] == 1
    series = traffic["series"]
    assert len(series["t"]) >= 2
    assert sum(series["requests_per_s"]["champion"]) > 0
    latency = traffic["latency_ms"]
    assert 0 < latency["since_start"]["p50"] <= latency["since_start"]["p99"]
    assert any(v is not None for v in latency["p99"])

    (drift,) = data["drift"]["series"]
    assert (drift["model"], drift["version"], drift["variant"]) == ("fraud", 2, "champion")
    (window,) = drift["windows"]
    assert window["rows"] == 512  # the 12 HTTP rows and the 500 shifted ones
    assert set(window["psi"]) == set(FEATURES)
    assert max(window["psi"], key=window["psi"].get) == FEATURES[0]
    assert window["psi"][FEATURES[0]] > 0.25
    bins = drift["score_bins"]
    assert len(bins["labels"]) == len(bins["reference"]) == len(bins["window"])
    assert sum(bins["window"]) == pytest.approx(1.0, abs=1e-4)
    assert data["drift"]["profile_missing"] == []

    alerts = data["alerts"]
    assert alerts["configured"]
    assert {(e["rule"], e["feature"]) for e in alerts["firing"]} == {("feature-drift", FEATURES[0])}
    assert alerts["recent"][0]["state"] == "firing"

    (model,) = data["models"]
    assert (model["name"], model["version"], model["aliases"]) == ("fraud", 2, ["champion"])
    assert model["rows_scored"] == 512
    assert model["lagging"] == []
    assert data["rollouts"] == {"available": True, "items": [], "error": None}
    assert data["ready"] is True


def test_a_performance_provider_fills_its_panel(monitored: Service, make_client: Any) -> None:
    client = make_client(create_app(monitored.settings, service=monitored))
    monitored.performance = lambda: None  # wired, no label landed yet
    assert client.get("/ui/data").json()["performance"] is None
    monitored.performance = lambda: {"auc_roc": 0.91, "labelled": 340}
    assert client.get("/ui/data").json()["performance"] == {"auc_roc": 0.91, "labelled": 340}

    def down() -> None:
        raise UnavailableError("the label store does not answer", field="labels")

    monitored.performance = down
    answer = client.get("/ui/data")
    assert answer.status_code == 200  # the rest of the page still draws
    assert answer.json()["performance"] == {"error": "the label store does not answer"}


def test_without_drift_the_data_says_so(client: Any) -> None:
    data = client.get("/ui/data").json()
    assert data["drift"] == {"enabled": False, "series": [], "profile_missing": []}
    assert data["alerts"]["configured"] is False
    assert [m["version"] for m in data["models"]] == [1]


def test_the_page_and_its_scripts_are_served_locally(client: Any) -> None:
    page = client.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/ui/static/plotly.min.js?v=" in page.text
    assert "cdn" not in page.text.lower()
    script = client.get("/ui/static/plotly.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert b"plotly.js v" in script.content[:200]
    assert len(script.content) > 1_000_000
    for name in ("dashboard.js", "dashboard.css"):
        assert client.get(f"/ui/static/{name}").status_code == 200
    missing = client.get("/ui/static/nope.js")
    assert missing.status_code == 404
    assert missing.json()["field"] == "name"


def test_plotly_missing_is_a_clear_503(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly fails
    response = client.get("/ui/static/plotly.min.js")
    assert response.status_code == 503
    assert "pip install 'mlsd[ui]'" in response.json()["message"]


@pytest.mark.parametrize(("path", "allow"), [("/ui/data", "GET"), ("/ui", "GET")])
def test_wrong_method_is_405_with_allow(client: Any, path: str, allow: str) -> None:
    response = client.post(path, json={})
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"] == "MethodNotAllowedError"


def test_data_needs_the_admin_token_when_one_is_set(
    settings: Settings, service: Service, make_client: Any
) -> None:
    secured = settings.model_copy(update={"admin_token": "adm", "api_key": "key"})
    client = make_client(create_app(secured, service=service))
    assert client.get("/ui").status_code == 200  # the page: no data, open
    assert client.get("/ui/", follow_redirects=False).status_code == 307  # to /ui
    assert client.get("/ui/static/dashboard.js").status_code == 200
    refused = client.get("/ui/data")
    assert refused.status_code == 401
    assert refused.json()["field"] == "authorization"
    assert client.get("/ui/data", headers={"X-API-Key": "key"}).status_code == 401
    assert client.get("/ui/data", headers={"Authorization": "Bearer adm"}).status_code == 200


def test_data_is_open_like_metrics_without_an_admin_token(
    settings: Settings, service: Service, make_client: Any
) -> None:
    keyed = settings.model_copy(update={"api_key": "key"})
    client = make_client(create_app(keyed, service=service))
    assert client.get("/ui/data").status_code == 200
    assert client.post("/v1/score", json=sample_transaction()).status_code == 401


def test_the_dashboard_can_be_turned_off(settings: Settings, registry: Registry) -> None:
    from tests.unit.serving.conftest import test_client

    svc = make_service(settings, registry, None, dashboard=False)
    with test_client()(create_app(settings, service=svc)) as client:
        assert client.get("/ui/data").status_code == 404
    svc.close()
    assert svc.dashboard is None


def test_the_dashboard_adds_nothing_to_the_scoring_path(
    settings: Settings, service: Service, make_client: Any
) -> None:
    before = service.pipeline.observers
    app = create_app(settings, service=service)
    make_client(app)
    assert service.dashboard is not None
    assert service.pipeline.observers == before  # no observer: it reads the counters
    middleware = [m.cls.__name__ for m in app.user_middleware]  # type: ignore[attr-defined]
    assert middleware == ["MetricsMiddleware"]
    front, layer = [], app.middleware_stack  # the layers in front of Starlette's own
    while type(layer).__name__ in ("SecurityMiddleware", "HotPaths"):
        front.append(type(layer).__name__)
        layer = layer.app  # type: ignore[union-attr]
    assert front == ["SecurityMiddleware", "HotPaths"]
