"""Prometheus metrics of one serving app, in their own registry (no global state).

Latencies are histograms in seconds, counters end in `_total`, and no label
carries a customer, a terminal or a transaction: label values come from a
small closed set (routes, model names and versions, statuses).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

CONTENT_TYPE = CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from mlsd.inference.observers import ScoredBatch, TwinSpec
    from mlsd.inference.spec import LoadedModel


class ServingMetrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.request_latency = Histogram(
            "mlsd_request_duration_seconds",
            "Time to answer an HTTP request, by route template and status code.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "mlsd_predictions_total",
            "Rows scored, by model, version, variant, role (primary, shadow) and outcome.",
            ["model", "version", "variant", "role", "status"],
            registry=r,
        )
        self.model_requests = Counter(
            "mlsd_model_requests_total",
            "Scoring requests, by model, version, variant, role (primary, shadow) and outcome.",
            ["model", "version", "variant", "role", "status"],
            registry=r,
        )
        self.batch_size = Histogram(
            "mlsd_batch_size",
            "Rows per model call after micro-batching.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.inference_latency = Histogram(
            "mlsd_model_inference_duration_seconds",
            "Time of one model call.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cache_hits = Counter(
            "mlsd_cache_hits_total", "Prediction cache hits.", ["model"], registry=r
        )
        self.cache_misses = Counter(
            "mlsd_cache_misses_total", "Prediction cache misses.", ["model"], registry=r
        )
        self.feature_latency = Histogram(
            "mlsd_feature_lookup_duration_seconds",
            "Time of one online store round trip (shared by the requests coalesced into it).",
            ["status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.degraded = Counter(
            "mlsd_degraded_total",
            "Requests scored without stored features (online store down or slow).",
            ["reason"],
            registry=r,
        )
        self.model_loads = Counter(
            "mlsd_model_loads_total", "Model versions loaded.", ["model", "version"], registry=r
        )
        self.model_load_seconds = Histogram(
            "mlsd_model_load_duration_seconds",
            "Time to load and warm a model version.",
            ["model"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.model_switches = Counter(
            "mlsd_model_switches_total", "Alias switches to a new version.", ["model"], registry=r
        )
        self.loaded_models = Gauge(
            "mlsd_loaded_models", "Model versions held by the host.", registry=r
        )
        self.alias_lag = Gauge(
            "mlsd_alias_lagging",
            "1 while an alias points at a version this server could not load (it serves the "
            "previous one).",
            ["model", "alias"],
            registry=r,
        )
        self.store_empty = Gauge(
            "mlsd_online_store_empty",
            "1 while the online store answers but lost its data (a watermark seen is gone).",
            registry=r,
        )
        self.shadow_dropped = Counter(
            "mlsd_shadow_dropped_total",
            "Shadow scorings dropped because the shadow queue was full (the answer never waits "
            "for a shadow).",
            ["variant"],
            registry=r,
        )
        self.shadow_restarts = Counter(
            "mlsd_shadow_process_restarts_total",
            "Shadow scorer processes that died, hung or did not start, and were replaced "
            "(their shadows in flight are counted in mlsd_shadow_dropped_total).",
            registry=r,
        )
        self.shadow_queued = Gauge(
            "mlsd_shadow_queue_depth",
            "Shadow scorings waiting for the shadow worker (or the shadow scorer process).",
            registry=r,
        )
        self.rollout_share = Gauge(
            "mlsd_rollout_share_percent",
            "The challenger's share of customers in each rollout this server carries out "
            "(canary step, A/B weight; 100 for blue-green; 0 once ended).",
            ["rollout", "kind"],
            registry=r,
        )
        self.rollout_decisions = Counter(
            "mlsd_rollout_decisions_total",
            "Canary controller decisions taken in this server (step, failed, promote, rollback).",
            ["rollout", "decision"],
            registry=r,
        )
        self.breaker_open = Gauge(
            "mlsd_feature_breaker_open",
            "1 while the online store circuit breaker is open or half-open.",
            registry=r,
        )
        self.log_buffered = Gauge(
            "mlsd_prediction_log_buffered",
            "Prediction records answered and journaled but not yet in the log's store (the "
            "flusher's backlog: it grows while the store is down or the flusher falls behind).",
            registry=r,
        )

    def watch_prediction_log(self, buffered: Callable[[], int]) -> None:
        """`mlsd_prediction_log_buffered` reads `buffered()` at each scrape."""
        self.log_buffered.set_function(lambda: float(buffered()))

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, memoised: `labels()` costs tens of microseconds."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered HTTP request, into `mlsd_request_duration_seconds`."""
        self.child(self.request_latency, route, method, str(status)).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class MetricsObserver:
    """Counts every scored batch by model, version, variant, role and outcome.

    Shadows scored by the shadow scorer process are counted there (`ShadowCounts`) and
    arrive as one summary per variant and job (`observe_summary`)."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.metrics = metrics
        self._children: dict[tuple[str, str, str, bool], tuple[Any, Any]] = {}

    def observe(self, batch: ScoredBatch) -> None:
        """One request and its rows into `mlsd_model_requests_total` / `mlsd_predictions_total`."""
        children = self._counters(batch.model, batch.variant, batch.role, batch.degraded)
        children[0].inc()
        children[1].inc(len(batch.scores))

    def shadow_twin(self) -> TwinSpec:
        """Counted in the shadow scorer process by `ShadowCounts`."""
        return f"{__name__}:ShadowCounts", ()

    def observe_summary(self, variant: str, model: LoadedModel, summary: Any) -> None:
        """A job's shadows of `variant`, as `ShadowCounts.summarize` counted them."""
        for degraded, (requests, rows) in summary.items():
            children = self._counters(model, variant, "shadow", degraded)
            children[0].inc(requests)
            children[1].inc(rows)

    def _counters(self, model: LoadedModel, variant: str, role: str, degraded: bool) -> Any:
        key = (model.key, variant, role, degraded)
        children = self._children.get(key)
        if children is None:  # once per (version, variant, role, outcome)
            m = self.metrics
            labels = (
                model.name, str(model.version), variant, role, "degraded" if degraded else "ok"
            )  # fmt: skip
            children = self._children[key] = (
                m.model_requests.labels(*labels),
                m.predictions.labels(*labels),
            )
        return children


class ShadowCounts:
    """`MetricsObserver`'s twin in the shadow scorer process: a job's shadow requests and
    rows of one variant, by outcome ({degraded: (requests, rows)})."""

    def __init__(self, _registry: Any) -> None:
        pass

    def summarize(self, batches: Sequence[ScoredBatch]) -> dict[bool, tuple[int, int]]:
        """Requests and rows, by whether their features were degraded."""
        out: dict[bool, tuple[int, int]] = {}
        for batch in batches:
            requests, rows = out.get(batch.degraded, (0, 0))
            out[batch.degraded] = (requests + 1, rows + len(batch.scores))
        return out
