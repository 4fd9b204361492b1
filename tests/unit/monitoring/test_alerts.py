"""Alert rules: duration before firing, resolution, bad rules files, and the webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from mlsd.errors import ConfigError
from mlsd.monitoring.alerts import AlertEngine, AlertRule, WebhookSink, load_rules
from mlsd.monitoring.drift import drift
from mlsd.registry.profile import build_profile

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_rule_fires_after_its_duration_and_resolves() -> None:
    rule = AlertRule(name="drift", metric="psi", feature="amount", above=0.25, for_seconds=120)
    engine = AlertEngine([rule])
    key = ("fraud", 3, "amount")
    assert engine.evaluate({key: 0.4}, "psi", at(0)) == []
    assert engine.evaluate({key: 0.4}, "psi", at(60)) == []
    assert engine.evaluate({key: 0.1}, "psi", at(90)) == []  # broke: the clock restarts
    assert engine.evaluate({key: 0.4}, "psi", at(100)) == []
    (fired,) = engine.evaluate({key: 0.5}, "psi", at(220))
    assert (fired.state, fired.value, fired.since) == ("firing", 0.5, at(100))
    assert engine.evaluate({key: 0.5}, "psi", at(280)) == []  # fires once, not every window
    assert engine.evaluate({}, "psi", at(300)) == []  # no data is not a recovery
    assert len(engine.firing) == 1
    (resolved,) = engine.evaluate({key: 0.01}, "psi", at(340))
    assert resolved.state == "resolved"
    assert engine.firing == []
    # other features do not match a rule on "amount"
    assert engine.evaluate({("fraud", 3, "night"): 9.0}, "psi", at(400)) == []


def test_rules_on_reports() -> None:
    rng = np.random.default_rng(0)
    profile = build_profile(rng.normal(size=(5000, 2)), ["a", "b"], scores=rng.uniform(size=5000))
    X = rng.normal(size=(5000, 2))
    X[:, 1] += 2
    report = drift(profile, X, rng.uniform(size=5000), model="fraud", version=2)
    engine = AlertEngine(
        [
            AlertRule(name="any-feature", metric="psi", above=0.25, severity="critical"),
            AlertRule(name="score", metric="score_psi", above=0.25),
        ]
    )
    events = engine.evaluate_reports([report], at(0))
    assert [(e.rule, e.feature, e.severity) for e in events] == [("any-feature", "b", "critical")]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(text)
    return path


def test_rules_file(tmp_path: Path) -> None:
    rules = load_rules(
        write(
            tmp_path,
            "rules:\n  - {name: drift, metric: psi, above: 0.25, for_seconds: 300,"
            " severity: critical}\n",
        )
    )
    assert rules == [
        AlertRule(name="drift", metric="psi", above=0.25, for_seconds=300, severity="critical")
    ]
    repo = Path(__file__).parents[3] / "deploy" / "monitoring" / "drift-rules.yml"
    assert {r.metric for r in load_rules(repo)} >= {"psi", "score_psi", "joint_psi"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [", "not YAML"),
        ("rules: []", "rules"),
        ("rules:\n  - {name: x, metric: auc, above: 1}", "rules.0.metric"),
        ("rules:\n  - {name: x, metric: psi}", "rules.0.above"),
        ("rules:\n  - {name: x, metric: psi, above: .nan}", "rules.0.above"),
        ("rules:\n  - {name: x, metric: psi, above: 1, for: 5}", "rules.0.for"),
        (
            "rules:\n  - {name: x, metric: psi, above: 1}\n  - {name: x, metric: js, above: 1}",
            "twice",
        ),
        ("- just a list", "rules file"),
    ],
)
def test_malformed_rules_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_rules(write(tmp_path, text))


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_rules(tmp_path / "nope.yml")


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    arrived = threading.Event()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        Hook.arrived.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def hook() -> Iterator[str]:
    Hook.received, Hook.arrived = [], threading.Event()
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts"
    server.shutdown()
    server.server_close()


def test_events_reach_the_webhook(hook: str) -> None:
    sink = WebhookSink(hook)
    engine = AlertEngine([AlertRule(name="score", metric="score_psi", above=0.1)], [sink])
    engine.evaluate({("fraud", 3, ""): 0.7}, "score_psi", at(0))
    assert Hook.arrived.wait(10)
    (body,) = Hook.received
    assert body["rule"] == "score"
    assert body["state"] == "firing"
    assert body["value"] == 0.7
    assert body["at"] == at(0).isoformat()
    assert sink.failures == 0


def test_a_dead_webhook_is_counted_not_raised() -> None:
    sink = WebhookSink("http://127.0.0.1:9/alerts", timeout_s=0.5)
    engine = AlertEngine([AlertRule(name="score", metric="score_psi", above=0.1)], [sink])
    assert len(engine.evaluate({("fraud", 3, ""): 0.7}, "score_psi", at(0))) == 1
    assert sink.failures == 1
    with pytest.raises(ConfigError, match="http"):
        WebhookSink("ftp://example/alerts")
