"""The dashboard's data: percentiles from histogram buckets, rates between samples, the
drift monitor's bounded history and the alert engine's recent events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mlsd.inference.metrics import LATENCY_BUCKETS, ServingMetrics
from mlsd.monitoring.alerts import AlertEngine, AlertRule
from mlsd.monitoring.dashboard import (
    MetricsHistory,
    drift,
    histogram_quantile,
    read_sample,
    traffic,
)
from mlsd.monitoring.live import DriftMonitor
from mlsd.registry.profile import build_profile

RNG = np.random.default_rng(0)
PROFILE = build_profile(RNG.normal(size=(4000, 3)), ["a", "b", "c"], scores=RNG.uniform(size=4000))


def test_percentiles_match_the_observations_within_their_bucket() -> None:
    metrics = ServingMetrics()
    latencies = np.random.default_rng(1).gamma(2.0, 0.002, size=5000)
    for seconds in latencies:
        metrics.observe_request("/v1/score", "POST", 200, float(seconds))
    sample = read_sample(metrics, 0.0)
    assert sample.bounds[:-1] == LATENCY_BUCKETS
    for q in (0.5, 0.95, 0.99):
        found = histogram_quantile(sample.bounds, sample.latency, q)
        exact = float(np.quantile(latencies, q))
        assert found is not None
        i = int(np.searchsorted(LATENCY_BUCKETS, exact))  # the bucket holding the exact one
        lower = LATENCY_BUCKETS[i - 1] if i else 0.0
        assert lower <= found <= LATENCY_BUCKETS[i]


def test_past_the_last_bound_is_that_bound() -> None:
    assert histogram_quantile((0.1, 1.0, float("inf")), (0, 0, 10), 0.5) == 1.0


def test_rates_and_percentiles_per_interval() -> None:
    now = [100.0]
    metrics = ServingMetrics()
    history = MetricsHistory(metrics, interval_s=60, clock=lambda: now[0])
    history.sample()  # nothing yet
    scored = metrics.model_requests.labels("fraud", "1", "champion", "primary", "ok")
    shadow = metrics.model_requests.labels("fraud", "2", "shadow", "shadow", "ok")
    for _ in range(30):
        scored.inc()
        shadow.inc()
        metrics.observe_request("/v1/score", "POST", 200, 0.004)
    metrics.observe_request("/v1/score", "POST", 422, 0.001)
    metrics.observe_request("/ui/data", "GET", 200, 0.5)  # the page's own polling: left out
    metrics.observe_request("/v2/health/ready", "GET", 503, 0.001)  # a probe: left out
    now[0] = 110.0
    history.sample()
    now[0] = 120.0
    history.sample()  # an idle interval
    out = traffic(history.samples(), read_sample(metrics, now[0]))
    assert out["totals"]["requests"] == 30  # the shadow's copies are not requests
    assert out["totals"]["http"] == {"2xx": 30.0, "4xx": 1.0}
    series = out["series"]
    assert series["requests_per_s"] == {"champion": [3.0, 0.0]}
    assert series["http_per_s"]["4xx"] == [0.1, 0.0]
    latency = out["latency_ms"]
    assert 3.0 < latency["p50"][0] < 5.0  # in the (3 ms, 5 ms] bucket
    assert latency["p50"][1] is None  # no answer in that interval: no percentile, no NaN
    assert latency["since_start"]["p99"] == pytest.approx(latency["p99"][0])


def _batch(values: np.ndarray) -> Any:
    model = SimpleNamespace(name="fraud", version=2)
    scores = np.random.default_rng(len(values)).uniform(size=len(values))
    return SimpleNamespace(model=model, variant="champion", values=values, scores=scores)


def test_drift_history_is_bounded_and_drawn_per_window() -> None:
    monitor = DriftMonitor(
        lambda n, v: PROFILE, window_rows=200, score_alarm_rate=None, history_windows=2
    )
    rng = np.random.default_rng(3)
    for shift in (0.0, 1.0, 2.0):
        rows = rng.normal(size=(200, 3))
        rows[:, 1] += shift
        monitor.observe(_batch(rows))
        monitor.drain()
    monitor.observe(_batch(rng.normal(size=(50, 3))))
    monitor.drain()
    ((key, kept),) = monitor.history().items()
    assert key == ("fraud", 2, "champion")
    assert len(kept) == 2  # the oldest of three dropped
    (entry,) = drift(monitor)["series"]
    assert entry["open_rows"] == 50
    assert entry["features"] == ["a", "b", "c"]
    psi_b = [w["psi"]["b"] for w in entry["windows"]]
    assert psi_b[0] < psi_b[1]  # shifted by 1, then by 2
    assert entry["windows"][1]["drifted"][0] == "b"
    bins = entry["score_bins"]
    assert len(bins["labels"]) == len(bins["reference"]) == len(PROFILE.score.counts)  # type: ignore[union-attr]
    assert sum(bins["reference"]) == pytest.approx(1.0, abs=1e-4)


def test_alert_engine_keeps_its_recent_events() -> None:
    engine = AlertEngine([AlertRule(name="s", metric="score_psi", above=0.1)], keep_events=3)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i, psi in enumerate((0.3, 0.01, 0.3, 0.01, 0.3)):
        engine.evaluate({("fraud", 1, ""): psi}, "score_psi", t0 + timedelta(minutes=i))
    assert [e.state for e in engine.recent] == ["firing", "resolved", "firing"]
    assert [e.state for e in engine.firing] == ["firing"]
