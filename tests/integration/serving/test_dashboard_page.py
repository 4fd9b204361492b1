"""The `/ui` dashboard page in headless Chromium against a real server (uvicorn, the app
`mlsd serve` builds).

The served version's reference profile is of the features the server computes for
"normal" transactions (amounts ~ Gamma(2, 20)); the live traffic spends 1.6x more, so
the amount drifts and the other features do not. A client thread sends bounded traffic
while the page polls; the test waits until every chart holds live data (traffic and
latency points, score bars, a drift heatmap of all 15 features, a firing alert, a running
shadow rollout; the admin token is set, so the page sends it), saves a
full-page screenshot (to the test's tmp_path, and to MLSD_TEST_ARTIFACTS when set: .ci/run
sets it) and checks the browser logged no error.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mlsd.features.store import FeatureStore
from mlsd.inference.observers import ScoredBatch, ScoringRequest
from mlsd.registry import Registry
from mlsd.registry.profile import PROFILE_ARTIFACT, build_profile, profile_bytes
from mlsd.serving.app import build_service, create_app
from mlsd.serving.schemas import transactions_from_records
from mlsd.serving.server import BackgroundServer
from mlsd.serving.service import ServeOptions
from mlsd.serving.testing import (
    FEATURES,
    NOW,
    register_tiny_model,
    sample_transaction,
    seed_feature_store,
    tiny_model_artifacts,
)
from mlsd.settings import Settings

pytestmark = pytest.mark.browser

MAX_REQUESTS = 4_000  # the client thread's bound, whatever happens
MAX_SECONDS = 90.0
TOKEN = "dashboard-test-token"
SHADOW = {"id": "shadow-v1", "kind": "shadow", "champion": 2, "challenger": 1}
RULES = """rules:
  - name: amount-drift
    metric: psi
    feature: TX_AMOUNT
    above: 0.1
    severity: critical
"""


def _transactions(rng: np.random.Generator, n: int, scale: float) -> list[dict[str, Any]]:
    stamp = NOW.isoformat().replace("+00:00", "Z")
    out = []
    for i in rng.integers(1, 10**9, size=n):
        customer, amount = int(rng.integers(1, 3)), round(float(rng.gamma(2.0, scale)), 2)
        out.append(
            sample_transaction(
                transaction_id=int(i), customer_id=customer, amount=amount, timestamp=stamp
            )
        )
    return out


class _Capture:
    def __init__(self) -> None:
        self.values: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []

    def observe(self, batch: ScoredBatch) -> None:
        self.values.append(batch.values)
        self.scores.append(batch.scores)


def _setup(home: Path) -> None:
    """fraud/1 (no profile), then fraud/2 profiled on the features this server computes
    for 2,000 normal transactions, as champion."""
    settings = Settings(home=home)
    store = FeatureStore.open(settings)
    views = seed_feature_store(store)
    store.close()
    files = tiny_model_artifacts(1)
    with Registry.open(settings) as registry:
        register_tiny_model(registry, files, views)
        registry.set_alias("fraud", "champion", 1, reason="test", actor="test")
    options = ServeOptions(
        log_predictions=False, cache_predictions=False, watch_aliases=False,
        watch_rollouts=False, dashboard=False, run_jobs=False,
    )  # fmt: skip
    service = build_service(settings, options)
    capture = _Capture()
    service.pipeline.add_observer(capture)
    service.load_all()
    txs = transactions_from_records(_transactions(np.random.default_rng(1), 2000, 20.0))
    for start in range(0, len(txs), 250):
        service.pipeline.score_sync(ScoringRequest(f"ref{start}", "v1", txs[start : start + 250]))
    service.close()
    rows, scores = np.concatenate(capture.values), np.concatenate(capture.scores)
    profile = build_profile(rows, list(FEATURES), scores=scores, source="reference traffic")
    with Registry.open(settings) as registry:
        register_tiny_model(registry, {**files, PROFILE_ARTIFACT: profile_bytes(profile)}, views)
        registry.set_alias("fraud", "champion", 2, reason="profiled", actor="test")


def _serve(home: Path, rules: Path) -> BackgroundServer:
    """The app `mlsd serve --drift-window-rows 150 --alert-rules RULES --ui-sample-s 0.5`
    builds, under uvicorn in a thread (a subprocess would spend its first seconds importing)."""
    options = ServeOptions(
        monitor_drift=True, drift_window_rows=150, alert_rules=str(rules),
        dashboard_sample_s=0.5,
    )  # fmt: skip
    settings = Settings(home=home, admin_token=TOKEN)
    server = BackgroundServer(create_app(settings, service=build_service(settings, options)))
    server.start()
    deadline = time.monotonic() + 60
    while not httpx.get(f"{server.url}/v2/health/ready", timeout=5).is_success:
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError("the server did not get ready in 60 s")
        time.sleep(0.1)
    return server


def _traffic(url: str, stop: threading.Event, sent: list[int]) -> None:
    """Shifted transactions (1.6x the reference's amounts) until `stop` or the bounds."""
    rng = np.random.default_rng(2)
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=10.0) as http:
        while not stop.is_set() and sent[0] < MAX_REQUESTS:
            if time.monotonic() - started > MAX_SECONDS:
                return
            for body in _transactions(rng, 20, 32.0):
                http.post("/v1/score", json=body)
                sent[0] += 1
            stop.wait(0.05)


READY = """() => {
  const has = (id, test) => {
    const d = document.getElementById(id);
    return !!(d && d.data && test(d.data));
  };
  const text = document.getElementById('count-requests').textContent || '0';
  const count = Number(text.replace(/,/g, ''));
  return count > 0
    && document.querySelectorAll('.js-plotly-plot').length >= 5
    && has('chart-traffic', (t) => t.some((x) => x.y.some((v) => v > 0)))
    && has('chart-latency', (t) => t.some((x) => x.y.some((v) => v !== null && v > 0)))
    && has('chart-scores', (t) => t.length === 2 && t[1].y.some((v) => v > 0))
    && has('chart-drift-summary', (t) => t.some((x) => x.y.length >= 2))
    && has('drift-heat-0', (t) => t[0].z.length === 15 && t[0].z[0].length >= 2)
    && document.querySelectorAll('#alerts .state-firing').length > 0
    && document.querySelectorAll('#models td').length > 0
    && document.querySelectorAll('#rollouts .state-running').length > 0;
}"""


def test_the_dashboard_draws_live_data_without_console_errors(
    tmp_path: Path, chromium: Any
) -> None:
    started = time.monotonic()
    home = tmp_path / "home"
    _setup(home)
    set_up = time.monotonic()
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    server = _serve(home, rules)
    url = server.url
    admin = {"Authorization": f"Bearer {TOKEN}"}
    started_rollout = httpx.post(f"{url}/admin/rollouts", json=SHADOW, headers=admin, timeout=30)
    assert started_rollout.status_code == 201, started_rollout.text
    assert httpx.get(f"{url}/ui/data", timeout=30).status_code == 401  # the admin token is set
    served = time.monotonic()
    stop, sent = threading.Event(), [0]
    client = threading.Thread(target=_traffic, args=(url, stop, sent), daemon=True)
    errors: list[str] = []
    try:
        client.start()
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.add_init_script(f"sessionStorage.setItem('mlsd-admin-token', '{TOKEN}')")
        page.goto(f"{url}/ui")
        opened = time.monotonic()
        page.wait_for_function(READY, timeout=90_000, polling=500)
        drawn = time.monotonic()
        stop.set()
        client.join(timeout=30)
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        heat = page.evaluate("document.getElementById('drift-heat-0').data[0]")
        alerts = page.inner_text("#alerts")
        models = page.inner_text("#models")
        perf = page.inner_text("#performance")
        rollouts = page.inner_text("#rollouts")
        page.close()
    finally:
        stop.set()
        server.stop()
    artifacts = os.environ.get("MLSD_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "dashboard.png")
    assert errors == []
    assert shot.stat().st_size > 50_000
    assert sent[0] > 0
    # only the amount drifts: its PSI tops every window, the unshifted customer features do not
    psi = dict(zip(heat["y"], (row[-1] for row in heat["z"]), strict=True))
    assert max(psi, key=lambda f: psi[f] or 0.0) == "TX_AMOUNT"
    assert "amount-drift" in alerts
    assert "fraud/2" in models
    assert "champion" in models
    assert "no labels yet" in perf
    assert "shadow-v1" in rollouts
    print(
        f"dashboard page test: {time.monotonic() - started:.1f} s (setup {set_up - started:.1f}"
        f", server {served - set_up:.1f}, page {opened - served:.1f}, live data drawn "
        f"{drawn - opened:.1f}), {sent[0]} requests"
    )
