"""The dashboard page's data (`GET /ui/data` of `mlsd serve`), from what serving already holds.

Nothing here runs on the scoring path. Traffic and latency come from the service's own
Prometheus metrics (`ServingMetrics`): a `MetricsHistory` thread reads the counters every
`interval_s` seconds into a bounded ring, and rates and percentiles are differences of
consecutive samples (as Prometheus' `rate` and `histogram_quantile` would compute them).
Drift over time is the live `DriftMonitor`'s history of closed windows, alerts its
`AlertEngine`'s recent transitions, model versions the `ModelHost`. Rollouts are handed
in by the caller (`mlsd.rollout` is a sibling package). Performance as labels land comes
from an optional provider (`mlsd.monitoring.performance_live` under `mlsd serve --labels`);
without one the panel says "no labels yet".

>>> bounds = (0.001, 0.005, 0.01, float("inf"))
>>> histogram_quantile(bounds, (10, 90, 100, 100), 0.5)  # in the (1 ms, 5 ms] bucket
0.003
>>> histogram_quantile(bounds, (0, 0, 0, 0), 0.5) is None  # no request: no percentile
True
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlsd.errors import MlsdError
from mlsd.inference.metrics import ServingMetrics
from mlsd.priority import in_background

if TYPE_CHECKING:
    from mlsd.inference.host import ModelHost
    from mlsd.monitoring.live import ClosedWindow, DriftMonitor

log = logging.getLogger(__name__)

#: Route templates whose latency the page draws: the scoring answers.
SCORING_ROUTES = frozenset(
    {"/v1/score", "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"}
)
#: Routes left out of the HTTP traffic chart: the page's own polling, scrapes, health
#: probes (a 503 while the models load is not a client's error), docs.
QUIET_PREFIXES = ("/ui", "/metrics", "/v2/health", "/healthz", "/docs", "/openapi.json")
QUANTILES = (0.5, 0.95, 0.99)

#: `() -> performance figures or None`: None means no labels have landed yet.
PerformanceProvider = Callable[[], Mapping[str, Any] | None]


def histogram_quantile(
    bounds: Sequence[float], cumulative: Sequence[float], q: float
) -> float | None:
    """The q-quantile of a Prometheus histogram's cumulative bucket counts (upper bounds
    `bounds`, the last +Inf), linear within a bucket; None without observations."""
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in zip(bounds, cumulative, strict=True):
        if count >= rank:
            if math.isinf(upper):
                return lower  # past the last finite bound: that bound, as Prometheus does
            inside = count - below
            share = (rank - below) / inside if inside > 0 else 1.0
            return round(lower + (upper - lower) * share, 9)
        lower, below = upper, count
    return lower  # pragma: no cover - the +Inf bucket holds every observation


@dataclass(frozen=True)
class Sample:
    """The service's counters at one instant (cumulative since start)."""

    t: float
    scored: Mapping[str, float]
    """Scoring requests answered by the primary variant, by variant."""
    rows: float
    """Rows scored by the primary variant."""
    http: Mapping[str, float]
    """HTTP answers by status class (`2xx`, `4xx`, `5xx`), the page's own and scrapes excluded."""
    bounds: tuple[float, ...]
    latency: tuple[float, ...]
    """Cumulative bucket counts of the scoring routes' successful answers, at `bounds`."""


def _le(value: str) -> float:
    return math.inf if value == "+Inf" else float(value)


def read_sample(metrics: ServingMetrics, t: float) -> Sample:
    """Read the counters the page draws (only those metrics: not the drift collector)."""
    scored: dict[str, float] = {}
    rows = 0.0
    for family in metrics.model_requests.collect():
        for s in family.samples:
            if s.name.endswith("_total") and s.labels.get("role") == "primary":
                variant = s.labels.get("variant", "")
                scored[variant] = scored.get(variant, 0.0) + s.value
    for family in metrics.predictions.collect():
        for s in family.samples:
            if s.name.endswith("_total") and s.labels.get("role") == "primary":
                rows += s.value
    http: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for family in metrics.request_latency.collect():
        for s in family.samples:
            route = s.labels.get("route", "")
            status = s.labels.get("status", "")
            if s.name.endswith("_count") and not route.startswith(QUIET_PREFIXES):
                kind = f"{status[:1]}xx" if status[:1].isdigit() else "other"
                http[kind] = http.get(kind, 0.0) + s.value
            elif s.name.endswith("_bucket") and route in SCORING_ROUTES and status[:1] == "2":
                le = _le(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
    bounds = tuple(sorted(buckets)) or (math.inf,)
    latency = tuple(buckets.get(b, 0.0) for b in bounds)
    return Sample(t, scored, rows, http, bounds, latency)


def utc(t: float) -> str:
    """Unix time as plotly reads a date: `YYYY-MM-DD HH:MM:SS.fff`, in UTC."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _finite(x: float | None, digits: int = 6) -> float | None:
    return round(x, digits) if x is not None and math.isfinite(x) else None


class MetricsHistory:
    """A bounded ring of `Sample`s, read every `interval_s` by a daemon thread."""

    def __init__(
        self,
        metrics: ServingMetrics,
        *,
        interval_s: float = 5.0,
        keep: int = 720,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_s <= 0 or keep < 2:
            raise ValueError("interval_s must be positive and keep at least 2")
        self.metrics, self.interval_s, self.clock = metrics, interval_s, clock
        self._samples: deque[Sample] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> Sample:
        """Read the counters now and keep the sample."""
        found = read_sample(self.metrics, self.clock())
        with self._lock:
            self._samples.append(found)
        return found

    def samples(self) -> list[Sample]:
        """The kept samples, oldest first."""
        with self._lock:
            return list(self._samples)

    def start(self) -> None:
        """Sample at once, then every `interval_s` until `close`."""
        if self._thread is None:
            self.sample()
            self._stop.clear()
            self._thread = threading.Thread(
                target=in_background(self._run), name="dashboard", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def traffic(samples: Sequence[Sample], now: Sample) -> dict[str, Any]:
    """Totals now, and per interval between samples: requests/s by variant, rows/s, HTTP
    answers/s by status class, and the scoring latency's percentiles (ms)."""
    points: dict[str, Any] = {"t": [], "rows_per_s": [], "requests_per_s": {}, "http_per_s": {}}
    latency: dict[str, list[float | None]] = {f"p{round(q * 100)}": [] for q in QUANTILES}
    variants = sorted({v for s in (*samples, now) for v in s.scored})
    kinds = sorted({k for s in (*samples, now) for k in s.http})
    for a, b in itertools.pairwise(samples):
        dt = b.t - a.t
        if dt <= 0:
            continue
        points["t"].append(utc(b.t))
        points["rows_per_s"].append(_finite((b.rows - a.rows) / dt, 3))
        for v in variants:
            rate = (b.scored.get(v, 0.0) - a.scored.get(v, 0.0)) / dt
            points["requests_per_s"].setdefault(v, []).append(_finite(rate, 3))
        for k in kinds:
            rate = (b.http.get(k, 0.0) - a.http.get(k, 0.0)) / dt
            points["http_per_s"].setdefault(k, []).append(_finite(rate, 3))
        delta = _bucket_delta(a, b)
        for q in QUANTILES:
            found = histogram_quantile(b.bounds, delta, q) if delta else None
            latency[f"p{round(q * 100)}"].append(_ms(found))
    overall = {
        f"p{round(q * 100)}": _ms(histogram_quantile(now.bounds, now.latency, q)) for q in QUANTILES
    }
    return {
        "totals": {
            "requests": sum(now.scored.values()),
            "by_variant": dict(sorted(now.scored.items())),
            "rows": now.rows,
            "http": dict(sorted(now.http.items())),
        },
        "series": points,
        "latency_ms": {"t": points["t"], **latency, "since_start": overall},
    }


def _bucket_delta(a: Sample, b: Sample) -> tuple[float, ...] | None:
    if a.bounds != b.bounds:  # the first scoring answer added the buckets: count from zero
        return b.latency if b.latency and b.latency[-1] > 0 else None
    return tuple(y - x for x, y in zip(a.latency, b.latency, strict=True))


def _ms(seconds: float | None) -> float | None:
    return _finite(seconds * 1000.0, 3) if seconds is not None else None


def _shares(counts: Iterable[int | float]) -> list[float]:
    values = [float(c) for c in counts]
    total = sum(values)
    return [round(v / total, 6) if total > 0 else 0.0 for v in values]


def _bin_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all"]
    cuts = [f"{e:.3g}" for e in edges]
    inner = [f"{lo}–{hi}" for lo, hi in itertools.pairwise(cuts)]
    return [f"≤ {cuts[0]}", *inner, f"> {cuts[-1]}"]


def _window(closed: ClosedWindow) -> dict[str, Any]:
    r = closed.report
    return {
        "start": utc(r.start.timestamp()) if r.start else None,
        "end": utc(r.end.timestamp()) if r.end else None,
        "rows": r.n_rows,
        "score_psi": _finite(r.score.psi) if r.score else None,
        "joint_psi": _finite(r.multivariate.psi) if r.multivariate else None,
        "psi": {f.name: _finite(f.psi) for f in r.features},
        "drifted": r.drifted("moderate"),
    }


def drift(monitor: DriftMonitor | None) -> dict[str, Any]:
    """Per (model, version, variant): the closed windows over time (PSI per feature, score
    and joint PSI), the score distribution of the last window against the reference, the
    rows of the window still open; the versions without a profile."""
    if monitor is None:
        return {"enabled": False, "series": [], "profile_missing": []}
    profiles = monitor.profiles()
    open_rows = monitor.open_rows()
    series = []
    history = monitor.history()
    for key in sorted({*history, *open_rows}):
        model, version, variant = key
        windows = history.get(key, [])
        profile = profiles.get((model, version))
        entry: dict[str, Any] = {
            "model": model, "version": version, "variant": variant,
            "open_rows": open_rows.get(key, 0), "window_rows": monitor.window_rows,
            "features": profile.feature_names if profile is not None else [],
            "windows": [_window(w) for w in windows], "score_bins": None,
        }  # fmt: skip
        last = windows[-1] if windows else None
        scored = profile.score if profile is not None else None
        if scored is not None and last is not None and last.score_counts is not None:
            end = last.report.end
            entry["score_bins"] = {
                "labels": _bin_labels(scored.edges),
                "reference": _shares(scored.counts),
                "window": _shares(last.score_counts),
                "window_end": utc(end.timestamp()) if end else None,
            }
        series.append(entry)
    missing = [f"{m}/{v}" for (m, v), p in sorted(profiles.items()) if p is None]
    return {"enabled": True, "series": series, "profile_missing": missing}


def alerts(monitor: DriftMonitor | None) -> dict[str, Any]:
    """The alert rules' state: firing now, and the last transitions (newest first)."""
    engine = monitor.alerts if monitor is not None else None
    if engine is None:
        return {"configured": False, "rules": [], "firing": [], "recent": []}
    return {
        "configured": True,
        "rules": [r.model_dump() for r in engine.rules],
        "firing": [e.to_dict() for e in engine.firing],
        "recent": [e.to_dict() for e in reversed(engine.recent)],
    }


def models(host: ModelHost, metrics: ServingMetrics) -> list[dict[str, Any]]:
    """Every loaded version: aliases, runtime, load time, rows it scored, a lagging alias."""
    rows: dict[tuple[str, str], float] = {}
    for family in metrics.predictions.collect():
        for s in family.samples:
            if s.name.endswith("_total"):
                key = (s.labels["model"], s.labels["version"])
                rows[key] = rows.get(key, 0.0) + s.value
    lagging: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for (name, alias), (served, wanted, why) in sorted(host.lagging.items()):
        lagging.setdefault((name, served), []).append(
            {"alias": alias, "points_at": wanted, "reason": why}
        )
    return [
        {
            "name": m.name,
            "version": m.version,
            "runtime": m.runtime.name,
            "aliases": host.aliases_of(m),
            "loaded_at": utc(m.loaded_at.timestamp()),
            "rows_scored": rows.get((m.name, str(m.version)), 0.0),
            "lagging": lagging.get((m.name, m.version), []),
        }
        for m in host.models()
    ]


class Dashboard:
    """The page's data: a metrics history (sampled in the background) and the state of
    drift, alerts, models and rollouts read at each call."""

    def __init__(
        self,
        metrics: ServingMetrics,
        *,
        interval_s: float = 5.0,
        keep: int = 720,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.history = MetricsHistory(metrics, interval_s=interval_s, keep=keep, clock=clock)
        self.clock = clock

    def start(self) -> None:
        """Start sampling the metrics."""
        self.history.start()

    def close(self) -> None:
        """Stop sampling."""
        self.history.close()

    def data(
        self,
        host: ModelHost,
        drift_monitor: DriftMonitor | None,
        rollouts: Mapping[str, Any],
        performance: PerformanceProvider | None = None,
    ) -> dict[str, Any]:
        """Everything the page draws, JSON-able, with no NaN (a missing value is None).

        `performance` feeds the "performance as labels land" panel (JSON-able, finite
        figures); without it, or while it returns None, the page says "no labels yet".
        """
        now = read_sample(self.metrics, self.clock())
        try:
            figures = performance() if performance is not None else None
        except MlsdError as exc:  # its store is down, say: the rest of the page still draws
            figures = {"error": exc.message}
        return {
            "generated_at": utc(now.t),
            "sample_interval_s": self.history.interval_s,
            "traffic": traffic(self.history.samples(), now),
            "drift": drift(drift_monitor),
            "alerts": alerts(drift_monitor),
            "models": models(host, self.metrics),
            "rollouts": dict(rollouts),
            "performance": dict(figures) if figures is not None else None,
        }
