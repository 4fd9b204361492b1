"""The live drift monitor: windows per version, gauges without NaN, and `mlsd serve`'s /metrics."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlsd.features.store import FeatureStore
from mlsd.inference.observers import ScoringRequest
from mlsd.monitoring.alerts import AlertEngine, AlertRule
from mlsd.monitoring.live import DriftMonitor
from mlsd.registry import Registry
from mlsd.registry.profile import (
    PROFILE_ARTIFACT,
    MissingProfileError,
    ReferenceProfile,
    build_profile,
    profile_bytes,
)
from mlsd.serving.app import create_app, install_drift
from mlsd.serving.service import ServeOptions
from mlsd.serving.testing import FEATURES, register_tiny_model, tiny_model_artifacts
from mlsd.settings import Settings
from tests.unit.serving.conftest import make_service

RNG = np.random.default_rng(0)
PROFILE = build_profile(RNG.normal(size=(4000, 3)), ["a", "b", "c"], scores=RNG.uniform(size=4000))


def lookup(name: str, version: int) -> ReferenceProfile:
    if version == 1:
        raise MissingProfileError("fraud/1 has no reference profile")
    return PROFILE


def batch(version: int, values: np.ndarray, variant: str = "champion", scores: Any = None) -> Any:
    model = SimpleNamespace(name="fraud", version=version)
    if scores is None:
        scores = np.random.default_rng(1).uniform(size=len(values))
    return SimpleNamespace(model=model, variant=variant, values=values, scores=scores)


def samples(families: list[Any]) -> dict[str, list[Any]]:
    return {f.name: f.samples for f in families}


def scrape(monitor: DriftMonitor) -> dict[str, list[Any]]:
    registry = CollectorRegistry()
    registry.register(monitor)
    return samples(list(text_string_to_metric_families(generate_latest(registry).decode())))


def test_windows_close_by_rows_and_gauges_never_hold_nan() -> None:
    rule = AlertRule(name="drift", metric="psi", above=0.25, severity="critical")
    monitor = DriftMonitor(
        lookup, window_rows=1000, alerts=AlertEngine([rule]), score_alarm_rate=None
    )
    monitor.prepare(SimpleNamespace(name="fraud", version=1))  # type: ignore[arg-type]
    got = scrape(monitor)
    assert got["mlsd_drift_profile_missing"][0].value == 1.0
    assert got["mlsd_drift_psi"] == []  # nothing measured yet: absent, not NaN
    shifted = np.random.default_rng(2).normal(size=(600, 3))
    shifted[:, 2] += 1.5
    monitor.observe(batch(2, shifted))
    assert monitor.drain() == []  # 600 rows: window still open
    got = scrape(monitor)
    (waiting,) = got["mlsd_drift_no_data"]
    assert waiting.labels == {"model": "fraud", "version": "2", "variant": "champion"}
    monitor.observe(batch(2, shifted))
    monitor.observe(batch(1, shifted))  # no profile: ignored
    (report,) = monitor.drain()
    assert report.n_rows == 1200
    assert report.drifted("major") == ["c"]
    got = scrape(monitor)
    psi = {s.labels["feature"]: s.value for s in got["mlsd_drift_psi"]}
    assert set(psi) == {"a", "b", "c"}
    assert psi["c"] > 0.25 > psi["a"]
    assert got["mlsd_drift_window_rows"][0].value == 1200
    assert got["mlsd_drift_no_data"] == []
    values = [s.value for series in got.values() for s in series]
    assert values
    assert all(math.isfinite(v) for v in values)
    assert {s.labels["rule"]: s.value for s in got["mlsd_alerts_firing"]} == {"drift": 1.0}
    assert all(
        set(s.labels) <= {"model", "version", "variant", "feature", "rule", "severity"}
        for series in got.values()
        for s in series
    )


def test_windows_close_by_age_with_enough_rows() -> None:
    now = [1000.0]
    monitor = DriftMonitor(
        lookup,
        window_rows=10_000,
        window_s=60,
        min_rows=100,
        clock=lambda: now[0],
        score_alarm_rate=None,
    )
    monitor.observe(batch(2, np.random.default_rng(3).normal(size=(50, 3))))
    now[0] += 120
    assert monitor.drain() == []  # old, but 50 rows is too few to judge
    monitor.observe(batch(2, np.random.default_rng(4).normal(size=(80, 3))))
    (report,) = monitor.drain()
    assert report.n_rows == 130
    assert report.drifted() == []


def test_the_score_detector_alarms_on_a_shift_and_rarely_before() -> None:
    monitor = DriftMonitor(lookup, window_rows=100_000, score_alarm_rate=1e-3)
    rng = np.random.default_rng(8)
    for _ in range(6):  # 3,000 scores like the reference's (uniform): about 3 false alarms
        monitor.observe(batch(2, rng.normal(size=(500, 3)), scores=rng.uniform(size=500)))
    monitor.drain()
    quiet = monitor.score_alarms[("fraud", 2, "champion")]
    assert quiet <= 12
    shifted = np.clip(rng.uniform(size=1000) + 0.3, 0, 1)
    monitor.observe(batch(2, rng.normal(size=(1000, 3)), scores=shifted))
    monitor.drain()
    assert monitor.score_alarms[("fraud", 2, "champion")] - quiet >= 5
    got = scrape(monitor)
    (alarms,) = got["mlsd_drift_score_alarms"]
    assert alarms.name == "mlsd_drift_score_alarms_total"
    assert alarms.labels["rate"] == "0.001"
    (ratio,) = got["mlsd_drift_score_cusum_ratio"]
    assert 0.0 <= ratio.value <= 1.0


def test_served_rows_reach_the_metrics_endpoint(home: Path, make_client: Any) -> None:
    settings = Settings(home=home)
    store = FeatureStore.open(settings)
    store.apply()
    files = tiny_model_artifacts(1)
    rows = np.random.default_rng(5).normal(size=(3000, len(FEATURES))).astype(np.float32)
    profile = build_profile(rows, list(FEATURES))
    with Registry.open(settings) as registry:
        register_tiny_model(registry, files, store.view_versions())  # v1: no profile
        register_tiny_model(
            registry, {**files, PROFILE_ARTIFACT: profile_bytes(profile)}, store.view_versions()
        )
        registry.set_alias("fraud", "champion", 2, reason="test", actor="test")
        service = make_service(settings, registry, store, load=False)
        options = ServeOptions(drift_window_rows=500)
        monitor = install_drift(service, options)
        service.owned.insert(0, monitor)
        service.load_all()
        client = make_client(create_app(settings, service=service))
        shifted = np.random.default_rng(6).normal(size=(500, len(FEATURES))).astype(np.float32)
        shifted[:, 0] += 3.0
        for chunk in np.array_split(shifted, 5):
            service.pipeline.score_sync(ScoringRequest("t", "v2", values=chunk, model="fraud"))
        monitor.drain()  # the background thread may have drained some: the result is the same
        text = client.get("/metrics").text
        service.close()
        store.close()
    got = samples(list(text_string_to_metric_families(text)))
    psi = {s.labels["feature"]: s.value for s in got["mlsd_drift_psi"]}
    assert set(psi) == set(FEATURES)
    assert max(psi, key=psi.get) == FEATURES[0]
    assert psi[FEATURES[0]] > 0.25
    assert {s.labels["version"] for s in got["mlsd_drift_psi"]} == {"2"}
    assert "nan" not in text.lower()
