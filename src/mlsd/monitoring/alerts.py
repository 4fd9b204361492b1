"""Alert rules on drift reports: a threshold held for a duration, with a severity.

A rule fires when its condition has held for `for_seconds` without a break (as a
Prometheus rule's `for:`), so one noisy window does not page anyone; it resolves when
the condition stops holding. Each transition is an `AlertEvent`, handed to every sink:
the log always, a webhook when configured.

Rules file (YAML), e.g. `deploy/monitoring/drift-rules.yml`:

    rules:
      - name: feature-drift
        metric: psi            # psi | js | kl | ks | missing_rate | score_psi | joint_psi
        feature: "*"           # a feature name, or "*" for any feature
        above: 0.25
        for_seconds: 300
        severity: critical     # info | warning | critical

>>> rule = AlertRule(name="score", metric="score_psi", above=0.1, for_seconds=60)
>>> engine = AlertEngine([rule])
>>> from datetime import datetime, timedelta, UTC
>>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
>>> def states(psi, seconds):
...     at = t0 + timedelta(seconds=seconds)
...     return [e.state for e in engine.evaluate({("fraud", 3, ""): psi}, "score_psi", at)]
>>> states(0.3, 0), states(0.3, 30), states(0.3, 60), states(0.01, 90)
([], [], ['firing'], ['resolved'])
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from mlsd.errors import ConfigError
from mlsd.monitoring.drift import DriftReport

log = logging.getLogger(__name__)

Metric = Literal["psi", "js", "kl", "ks", "missing_rate", "score_psi", "joint_psi"]
Severity = Literal["info", "warning", "critical"]
#: (model, version, feature) -> value; feature "" for the per-version metrics.
Values = Mapping[tuple[str, int, str], float]


class AlertRule(BaseModel):
    """One rule: `metric` of `feature` above `above` for `for_seconds`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    metric: Metric
    feature: str = "*"
    above: float = Field(allow_inf_nan=False)
    for_seconds: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    severity: Severity = "warning"
    description: str = ""

    def matches(self, feature: str) -> bool:
        """Whether a value of `feature` is this rule's ("*" matches every feature)."""
        return self.feature in ("*", feature)


class RulesFile(BaseModel):
    """A rules file: a list of rules with unique names."""

    model_config = ConfigDict(extra="forbid")

    rules: list[AlertRule] = Field(min_length=1)


def load_rules(path: Path) -> list[AlertRule]:
    """Rules from YAML; ConfigError naming the file and the offending field otherwise."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"rules file {path} does not exist", field="rules") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"rules file {path} is not YAML: {exc}", field="rules") from None
    try:
        rules = RulesFile.model_validate(data).rules
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"rules file {path}: {where}: {first['msg']}", field=where) from None
    names = [r.name for r in rules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"rules file {path}: rule names used twice: {twice}", field="rules")
    return rules


@dataclass(frozen=True)
class AlertEvent:
    """A rule starting to fire, or resolving, for one model version (and feature)."""

    rule: str
    state: Literal["firing", "resolved"]
    severity: Severity
    model: str
    version: int
    feature: str
    metric: str
    value: float
    threshold: float
    at: datetime
    since: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (times as ISO strings)."""
        out = asdict(self)
        out["at"], out["since"] = self.at.isoformat(), self.since.isoformat()
        return out


class AlertSink(Protocol):
    """Where alert events go."""

    def send(self, event: AlertEvent) -> None:
        """Deliver one event (must not raise for a delivery failure: log it)."""
        ...


class LogSink:
    """Alert events into the `mlsd.monitoring.alerts` log."""

    def send(self, event: AlertEvent) -> None:
        """Warning for a firing alert, info for a resolved one."""
        level = logging.WARNING if event.state == "firing" else logging.INFO
        log.log(
            level,
            "alert %s %s: %s%s of %s/%s = %.4g (threshold %.4g)",
            event.rule,
            event.state,
            event.metric,
            f" {event.feature}" if event.feature else "",
            event.model,
            event.version,
            event.value,
            event.threshold,
        )


class WebhookSink:
    """Alert events POSTed as JSON to a URL (a failed delivery is logged and counted)."""

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL must be http(s)://, not {url!r}", field="webhook")
        self.url, self.timeout_s = url, timeout_s
        self.failures = 0

    def send(self, event: AlertEvent) -> None:
        """One POST; its failure is logged, never raised into the monitor."""
        import httpx

        try:
            httpx.post(self.url, json=event.to_dict(), timeout=self.timeout_s).raise_for_status()
        except httpx.HTTPError as exc:
            self.failures += 1
            log.error("alert webhook %s failed for %s: %s", self.url, event.rule, exc)


def report_values(
    reports: Iterable[DriftReport], metric: Metric
) -> dict[tuple[str, int, str], float]:
    """One metric of drift reports as rule inputs: per feature, or per version."""
    out: dict[tuple[str, int, str], float] = {}
    for r in reports:
        version = r.version if r.version is not None else 0
        if metric == "score_psi":
            if r.score is not None:
                out[(r.model, version, "")] = r.score.psi
            continue
        if metric == "joint_psi":
            if r.multivariate is not None:
                out[(r.model, version, "")] = r.multivariate.psi
            continue
        for f in r.features:
            value = f.missing_window if metric == "missing_rate" else getattr(f, metric)
            if value is not None:
                out[(r.model, version, f.name)] = float(value)
    return out


class AlertEngine:
    """Tracks each rule's pending and firing state per (model, version, feature); keeps the
    last `keep_events` transitions (`recent`, oldest first) for the dashboard page."""

    def __init__(
        self, rules: Sequence[AlertRule], sinks: Sequence[AlertSink] = (), keep_events: int = 100
    ) -> None:
        self.rules = list(rules)
        self.sinks = list(sinks) or [LogSink()]
        self._recent: deque[AlertEvent] = deque(maxlen=keep_events)
        self._recent_lock = threading.Lock()  # appended by the monitor, read by the page
        self._pending: dict[tuple[str, str, int, str], datetime] = {}
        self._firing: dict[tuple[str, str, int, str], AlertEvent] = {}

    @property
    def firing(self) -> list[AlertEvent]:
        """The alerts firing now."""
        return list(self._firing.values())

    @property
    def recent(self) -> list[AlertEvent]:
        """The last transitions (firing and resolved), oldest first."""
        with self._recent_lock:
            return list(self._recent)

    def evaluate(self, values: Values, metric: str, at: datetime) -> list[AlertEvent]:
        """Apply every rule on `metric` to fresh values; return (and send) the transitions.

        A key absent from `values` (no data this window) keeps its state: no data is
        neither a breach nor a recovery.
        """
        events: list[AlertEvent] = []
        for rule in (r for r in self.rules if r.metric == metric):
            for (model, version, feature), value in values.items():
                if not rule.matches(feature) and feature:
                    continue
                key = (rule.name, model, version, feature)
                if value > rule.above:
                    since = self._pending.setdefault(key, at)
                    if key not in self._firing and (at - since).total_seconds() >= rule.for_seconds:
                        event = AlertEvent(
                            rule.name,
                            "firing",
                            rule.severity,
                            model,
                            version,
                            feature,
                            metric,
                            value,
                            rule.above,
                            at,
                            since,
                        )
                        self._firing[key] = event
                        events.append(event)
                else:
                    self._pending.pop(key, None)
                    fired = self._firing.pop(key, None)
                    if fired is not None:
                        events.append(
                            AlertEvent(
                                rule.name,
                                "resolved",
                                rule.severity,
                                model,
                                version,
                                feature,
                                metric,
                                value,
                                rule.above,
                                at,
                                fired.since,
                            )
                        )
        with self._recent_lock:
            self._recent.extend(events)
        for event in events:
            for sink in self.sinks:
                sink.send(event)
        return events

    def evaluate_reports(self, reports: Sequence[DriftReport], at: datetime) -> list[AlertEvent]:
        """Every rule's metric, taken from drift reports."""
        events: list[AlertEvent] = []
        for metric in sorted({r.metric for r in self.rules}):
            events += self.evaluate(report_values(reports, metric), metric, at)
        return events
