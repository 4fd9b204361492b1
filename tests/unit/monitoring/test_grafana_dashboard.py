"""deploy/grafana/mlsd.json: what its generator writes, whole through grafana-foundation-sdk's
model, every query valid PromQL (promtool), every metric one mlsd exports.

No Grafana server installs here, so these are the checks short of rendering it.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlsd.features.store import FeatureStore
from mlsd.registry import Registry
from mlsd.serving.app import create_app, install_drift
from mlsd.serving.service import ServeOptions
from mlsd.settings import Settings
from mlsd.streaming.metrics import StreamMetrics
from tests.conftest import need_tool
from tests.unit.serving.conftest import make_service

GRAFANA = Path(__file__).parents[3] / "deploy" / "grafana"
DRIFT_RULES = Path(__file__).parents[3] / "deploy" / "monitoring" / "drift-rules.yml"
PROMETHEUS_RULES = Path(__file__).parents[3] / "deploy" / "prometheus" / "mlsd-rules.yml"
#: added by the performance monitoring (CBPE) work, labels model, version, variant
PERFORMANCE = {
    "mlsd_performance_auc",
    "mlsd_performance_ap",
    "mlsd_performance_estimated_auc",
    "mlsd_performance_label_coverage",
    "mlsd_label_lag_seconds",
}
#: what Grafana substitutes before sending a query to Prometheus
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$model": ".*"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
}


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlsd_grafana", GRAFANA / "dashboard.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "mlsd.json").read_text())
    return data


def round_trip(data: dict[str, Any]) -> dict[str, Any]:
    """JSON -> the SDK's Dashboard model -> JSON: whatever the model does not know is lost."""
    back: dict[str, Any] = json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder))
    return back


def queries(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every panel's targets."""
    return [
        (panel["title"], target["expr"])
        for panel in data["panels"]
        for target in panel.get("targets", [])
    ]


def test_the_json_is_what_the_generator_writes() -> None:
    assert (GRAFANA / "mlsd.json").read_text() == generator().render(), (
        "deploy/grafana/mlsd.json is stale: run python deploy/grafana/dashboard.py"
    )


def test_the_sdk_model_round_trip_keeps_everything() -> None:
    data = dashboard()
    assert round_trip(data) == data
    broken = copy.deepcopy(data)
    broken["panels"][1]["fieldConfig"]["defaults"]["unitt"] = "s"  # a typo Grafana ignores
    assert round_trip(broken) != broken


def test_sections_and_panels() -> None:
    data = dashboard()
    rows = [p["title"] for p in data["panels"] if p["type"] == "row"]
    assert rows == [
        "Traffic", "Latency", "Scores", "Drift", "Performance (delayed labels)", "Alerts",
        "Rollouts and variants", "Service health",
    ]  # fmt: skip
    panels = [p for p in data["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in data["panels"]}) == len(data["panels"])
    assert all(p["targets"] and p["description"] for p in panels)
    assert all(p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for p in panels)
    for panel in panels:  # no two panels overlap on the 24-column grid
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
    cells = [
        (x, y)
        for p in data["panels"]
        for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
        for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells))


@pytest.mark.promtool
def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = need_tool("promtool", "prometheus")
    exprs = [expr for _, expr in queries(dashboard())]
    assert len(exprs) > 40

    def check(exprs: list[str]) -> subprocess.CompletedProcess[str]:
        for name, value in GRAFANA_VARIABLES.items():
            exprs = [e.replace(name, value) for e in exprs]
        assert not any("$" in e for e in exprs), "a Grafana variable left unsubstituted"
        rules = [{"record": f"mlsd:panel_query_{i}", "expr": e} for i, e in enumerate(exprs)]
        path = tmp_path / "panels.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
        return subprocess.run(
            [promtool, "check", "rules", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    checked = check(exprs)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in checked.stdout
    broken = check([*exprs, "sum by (model (mlsd_drift_psi)"])  # the check can fail
    assert broken.returncode != 0


def exported_names(text: str) -> set[str]:
    """Every sample name an exposition can hold (declared families included, even empty)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
    return names


def test_every_metric_is_exported(home: Path, make_client: Any) -> None:
    """The names the panels query are in a running app's /metrics (drift and mlsd's own alert
    rules on), the stream processor's, or the five performance gauges; ALERTS is Prometheus'
    own, for the alerts of deploy/prometheus/mlsd-rules.yml."""
    from mlsd.serving.testing import register_tiny_model, tiny_model_artifacts

    settings = Settings(home=home)
    store = FeatureStore.open(settings)
    store.apply()
    with Registry.open(settings) as registry:
        register_tiny_model(registry, tiny_model_artifacts(1), store.view_versions())
        registry.set_alias("fraud", "champion", 1, reason="test", actor="test")
        service = make_service(settings, registry, store, load=False)
        monitor = install_drift(service, ServeOptions(alert_rules=str(DRIFT_RULES)))
        service.owned.insert(0, monitor)
        service.load_all()
        client = make_client(create_app(settings, service=service))
        served = client.get("/metrics").text
        service.close()
    store.close()
    stream = generate_latest(StreamMetrics().registry).decode()
    exported = exported_names(served) | exported_names(stream)
    assert "mlsd_drift_psi" in exported  # the drift families are declared before any window
    assert "mlsd_alerts_firing" in exported

    data = dashboard()
    texts = [expr for _, expr in queries(data)]
    texts += [v["query"] for v in data["templating"]["list"] if v["type"] == "query"]
    used = {name for text in texts for name in re.findall(r"\bmlsd_[a-z0-9_]+\b", text)}
    unknown = used - exported - PERFORMANCE
    assert not unknown, f"panels query metrics mlsd does not export: {sorted(unknown)}"
    assert used >= PERFORMANCE
    for title, expr in queries(data):
        assert re.search(r"\bmlsd_[a-z0-9_]+\b|\bALERTS\{", expr), title
        if "ALERTS" in expr:
            alerts = {r["alert"] for g in yaml.safe_load(PROMETHEUS_RULES.read_text())["groups"]
                      for r in g["rules"]}  # fmt: skip
            assert all(a.startswith("Mlsd") for a in alerts)
            assert 'alertname=~"Mlsd.*"' in expr
    # most of what mlsd exports is on the dashboard (the rest: process internals)
    base = {n for n in exported if n.startswith("mlsd_") and not n.endswith("_created")}
    families = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in base}
    shown = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in used}
    assert families - shown == set(), f"exported but not on the dashboard: {families - shown}"
