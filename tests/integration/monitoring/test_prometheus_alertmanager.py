"""A real Prometheus scrapes `mlsd serve`; an alert of deploy/prometheus/mlsd-rules.yml fires
on injected drift and Alertmanager delivers it to this test's webhook.

Everything runs on free loopback ports and is stopped at the end: `mlsd serve` (a model
with a reference profile, 500-row drift windows), Debian's `prometheus` and
`prometheus-alertmanager` on deploy/'s configs (scrape and rule evaluation every second,
the rules' `for:` at 1 s, no Alertmanager cluster, group_wait 1 s) calling a webhook
served here.

First a window of traffic like the reference: Prometheus must have scraped its gauges and
no major-drift alert may exist. Then a window with TX_AMOUNT shifted by 3 standard
deviations: the webhook must receive MlsdFeatureDriftMajor for that feature and no other.
At the end every panel query of deploy/grafana/mlsd.json runs on this Prometheus.
Every wait polls against a generous deadline, so a loaded machine only makes it slower.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from mlsd.features.store import FeatureStore
from mlsd.registry import Registry
from mlsd.registry.profile import PROFILE_ARTIFACT, build_profile, profile_bytes
from mlsd.serving.server import free_port
from mlsd.serving.testing import FEATURES, register_tiny_model, tiny_model_artifacts
from mlsd.settings import Settings
from tests.conftest import need_tool
from tests.unit.monitoring.test_grafana_dashboard import GRAFANA_VARIABLES, dashboard, queries

pytestmark = pytest.mark.prometheus

DEPLOY = Path(__file__).parents[3] / "deploy"
SERVE = "from mlsd.cli.main import run; run()"
WINDOW = 500  # rows per drift window
MAJOR = "MlsdFeatureDriftMajor"
SHIFTED = FEATURES[0]  # TX_AMOUNT
DEADLINE_S = 90.0  # per wait: a loaded machine is slow, never wrong


def _setup(home: Path) -> int:
    """fraud@champion: a tiny model whose reference profile is N(0, 1) on every feature."""
    settings = Settings(home=home)
    store = FeatureStore.open(settings)
    store.apply()
    reference = np.random.default_rng(5).normal(size=(3000, len(FEATURES)))
    profile = build_profile(reference, list(FEATURES))
    files = {**tiny_model_artifacts(1), PROFILE_ARTIFACT: profile_bytes(profile)}
    with Registry.open(settings) as registry:
        version = register_tiny_model(registry, files, store.view_versions())
        registry.set_alias("fraud", "champion", version.version, reason="test", actor="test")
    store.close()
    return version.version


def _configs(folder: Path, serve: int, alertmanager: int, webhook: int) -> None:
    """deploy/'s Prometheus and Alertmanager configs, on these ports, waiting seconds not
    minutes; the rules are mlsd-rules.yml with every `for:` at 1 s."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "mlsd-rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"  # the same expressions, without minutes of patience
    (folder / "mlsd-rules.yml").write_text(yaml.safe_dump(rules))
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["mlsd-rules.yml"]
    prometheus["global"] = {
        "scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"
    }  # fmt: skip
    (managers,) = prometheus["alerting"]["alertmanagers"]
    managers["static_configs"] = [{"targets": [f"127.0.0.1:{alertmanager}"]}]
    scrape = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    scrape["mlsd-serve"]["static_configs"] = [{"targets": [f"127.0.0.1:{serve}"]}]
    prometheus["scrape_configs"] = [scrape["mlsd-serve"]]  # no stream processor here
    (folder / "prometheus.yml").write_text(yaml.safe_dump(prometheus))
    manager = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    manager["route"] |= {"group_wait": "1s", "group_interval": "1s"}
    (receiver,) = manager["receivers"]
    (hook,) = receiver["webhook_configs"]
    hook |= {"url": f"http://127.0.0.1:{webhook}/alerts", "send_resolved": False}
    (folder / "alertmanager.yml").write_text(yaml.safe_dump(manager))


class Webhook:
    """An HTTP server recording every Alertmanager notification with its arrival time."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hook.lock:
                    hook.received.append((time.monotonic(), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def alerts(self, name: str) -> list[tuple[float, dict[str, Any]]]:
        """(arrival, alert) of every alert `name` received so far."""
        with self.lock:
            return [
                (t, alert)
                for t, body in self.received
                for alert in body["alerts"]
                if alert["labels"]["alertname"] == name
            ]

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def _process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Path]:
    """Run `args` with its output in `log`; terminate it (kill after 10 s) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
        try:
            yield log
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait(what: str, check: Callable[[], Any], logs: list[Path]) -> Any:
    """Poll `check` until it returns something truthy; fail with the logs at the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            found = check()
        except (httpx.HTTPError, KeyError, ValueError):
            found = None
        if found:
            return found
        time.sleep(0.1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs)
    raise AssertionError(f"{what}: not within {DEADLINE_S:.0f} s\n{tails}")


def _ready(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def _dashboard_queries(prometheus: str) -> set[str]:
    """Run every panel query of deploy/grafana/mlsd.json on this Prometheus (each must be
    accepted: vector matching is only checked on data); the titles of those with data."""
    answered = set()
    for title, expr in queries(dashboard()):
        for name, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(name, value)
        answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
        assert answer.status_code == 200, f"panel {title!r}: {answer.text}"
        if answer.json()["data"]["result"]:
            answered.add(title)
    return answered


def _infer(serve: str, rows: np.ndarray) -> None:
    body = {
        "inputs": [
            {
                "name": "input",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.astype(np.float32).ravel().tolist(),
            }
        ]
    }
    answer = httpx.post(f"{serve}/v2/models/fraud/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text


def test_injected_drift_reaches_the_alertmanager_webhook(home: Path, tmp_path: Path) -> None:
    prometheus_bin = need_tool("prometheus", "prometheus")
    alertmanager_bin = need_tool("prometheus-alertmanager", "prometheus-alertmanager")
    version = _setup(home)
    ports = {name: free_port() for name in ("serve", "prometheus", "alertmanager")}
    serve, prometheus, manager = (f"http://127.0.0.1:{p}" for p in ports.values())
    rng = np.random.default_rng(7)
    with ExitStack() as stack:
        hook = stack.enter_context(Webhook())
        _configs(tmp_path, ports["serve"], ports["alertmanager"], hook.port)
        env = {**os.environ, "MLSD_HOME": str(home)}
        logs = [
            stack.enter_context(_process(command, tmp_path / log, env))
            for command, log in (
                (
                    [sys.executable, "-c", SERVE, "serve", "--port", str(ports["serve"]),
                     "--drift-window-rows", str(WINDOW)],
                    "serve.log",
                ),
                (
                    [prometheus_bin, "--config.file=prometheus.yml",
                     f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                     f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
                    "prometheus.log",
                ),
                (
                    [alertmanager_bin, "--config.file=alertmanager.yml",
                     f"--storage.path={tmp_path / 'am'}",
                     f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                     "--cluster.listen-address="],
                    "alertmanager.log",
                ),
            )
        ]  # fmt: skip
        _wait("mlsd serve ready", lambda: _ready(f"{serve}/v2/health/ready"), logs)
        _wait("Prometheus ready", lambda: _ready(f"{prometheus}/-/ready"), logs)
        _wait("Alertmanager ready", lambda: _ready(f"{manager}/-/ready"), logs)

        # A window like the reference: scraped, and no major drift anywhere.
        _infer(serve, rng.normal(size=(WINDOW, len(FEATURES))))
        scraped = _wait(
            "Prometheus scraping the first closed window",
            lambda: _query(prometheus, 'mlsd_drift_window_rows{model="fraud"}'),
            logs,
        )
        assert scraped[0]["metric"]["version"] == str(version)
        assert float(scraped[0]["value"][1]) == WINDOW
        quiet = _query(prometheus, "max(mlsd_drift_psi)")
        assert float(quiet[0]["value"][1]) < 0.25
        assert _query(prometheus, f'ALERTS{{alertname="{MAJOR}"}}') == []
        assert hook.alerts(MAJOR) == []

        # The drift: TX_AMOUNT moved by 3 standard deviations.
        drifted = rng.normal(size=(WINDOW, len(FEATURES)))
        drifted[:, 0] += 3.0
        injected, injected_at = time.monotonic(), time.time()
        _infer(serve, drifted)
        delivered = _wait(
            "MlsdFeatureDriftMajor at the webhook",
            lambda: hook.alerts(MAJOR),
            logs,
        )
        rules = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        answered = _dashboard_queries(prometheus)
    print(f"dashboard panels with data: {sorted(answered)}")
    assert {"Rows scored / s", "HTTP latency p50 / p99", "Feature PSI, top 10"} <= answered
    took = delivered[0][0] - injected
    (active,) = (a["activeAt"] for a in rules if a["labels"]["alertname"] == MAJOR)
    pending = datetime.fromisoformat(active).timestamp() - injected_at
    print(f"injection -> rule pending in Prometheus {pending:.2f} s -> webhook {took:.2f} s")
    assert 0 < pending < took
    labels = [alert["labels"] for _, alert in delivered]
    assert {label["feature"] for label in labels} == {SHIFTED}
    (alert,) = (alert for _, alert in delivered)
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "MlsdFeatureDriftMajor",
        "model": "fraud",
        "version": str(version),
        "variant": "champion",
        "feature": SHIFTED,
        "severity": "critical",
    }
    assert alert["annotations"]["summary"].startswith(f"{SHIFTED} drifted (PSI ")
