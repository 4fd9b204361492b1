"""The serving state of one app: host, endpoints, the scoring pipeline, cache, log, metrics.

Handlers reach it as `request.app.state.service`; nothing in a handler builds or chooses a
backend, and every handler scores through `service.pipeline` (`mlsd.inference.pipeline`):
install routing layers with `service.pipeline.install(...)`, observers with
`service.pipeline.add_observer(...)`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlsd.errors import MlsdError, NotFoundError, UnavailableError
from mlsd.features.online import SqliteOnlineStore
from mlsd.features.store import FeatureStore
from mlsd.inference.assemble import FeatureAssembler, FeatureSource
from mlsd.inference.batcher import BatchConfig
from mlsd.inference.breaker import CircuitBreaker
from mlsd.inference.cache import PredictionCache
from mlsd.inference.endpoint import Endpoint, HostedEndpoint, VersionEndpoint
from mlsd.inference.host import ModelHost, parse_ref
from mlsd.inference.log_observer import PredictionLogObserver
from mlsd.inference.metrics import MetricsObserver, ServingMetrics
from mlsd.inference.observers import ScoredBatch, ScoringRequest
from mlsd.inference.offload import Offloader
from mlsd.inference.pipeline import ScoringPipeline, default_variant
from mlsd.inference.provided import ProvidedFeatures
from mlsd.inference.spec import LoadedModel
from mlsd.inference.store_probe import StoreProbe
from mlsd.registry import Registry
from mlsd.rollout.agent import RolloutAgent
from mlsd.rollout.manage import RolloutManager
from mlsd.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from mlsd.monitoring.dashboard import Dashboard, PerformanceProvider
    from mlsd.monitoring.live import DriftMonitor
    from mlsd.monitoring.performance_live import PerformanceMonitor


log = logging.getLogger(__name__)


@dataclass
class ServeOptions:
    """How the service behaves (beyond backend URLs, which live in `Settings`)."""

    models: tuple[str, ...] = ("fraud@champion",)
    batching: BatchConfig = field(default_factory=BatchConfig)
    batching_per_model: Mapping[str, BatchConfig] = field(default_factory=dict)
    fail_when_degraded: bool = False
    feature_timeout_s: float = 0.05
    breaker_failures: int = 5
    #: The online store's breaker probes `breaker_first_probe_s` after opening, doubling
    #: after each failed probe up to `breaker_reset_s`: a 2 s stall is over ~0.1 s after it.
    #: On the event loop a probe runs in the background (no request waits on it), so
    #: probing every 0.5 s during a long outage costs nothing and bounds the recovery.
    breaker_first_probe_s: float = 0.05
    #: How often scoring checks that the online store still holds its data (watermarks).
    store_probe_s: float = 1.0
    breaker_reset_s: float = 0.5
    watch_aliases: bool = True
    #: Open the prediction log and the prediction cache the settings name (benchmarks turn
    #: them off to measure what they cost; a service without its log keeps no audit trail).
    log_predictions: bool = True
    cache_predictions: bool = True
    #: The prediction cache's feature-freshness bound: a cached score is not served once the
    #: features it was computed from have an event this many seconds newer (0: any newer
    #: event). None: `settings.cache_freshness_seconds` (unset there too: off).
    cache_freshness_s: float | None = None
    #: Request-time features of their own components, for the models whose signatures name
    #: them (e.g. `mlsd.features.similarity.SimilarityFeatures`: docs/caching.md).
    provided_features: tuple[ProvidedFeatures, ...] = ()
    #: GC and GIL settings for a scoring process (`mlsd.serving.tuning`): process-wide,
    #: so off for an embedded app; `mlsd serve` and the demo turn them on.
    tune_process: bool = False
    #: Seconds between load attempts while a model is not in the registry yet; a version
    #: that fails to load is retried with a wait doubling up to `load_retry_max_s`.
    load_retry_s: float = 2.0
    load_retry_max_s: float = 30.0
    #: Live drift (`mlsd.monitoring.live`): tumbling windows of served rows against each
    #: version's reference profile, exported as `mlsd_drift_*` gauges; alert rules (YAML,
    #: `mlsd.monitoring.alerts`) evaluated on each closed window, events to the log and to
    #: `alert_webhook` when set. Off by default (embedded apps, benchmarks, the demo);
    #: `mlsd serve` turns it on.
    monitor_drift: bool = False
    drift_window_rows: int = 5_000
    drift_window_s: float = 300.0
    alert_rules: str | None = None
    alert_webhook: str | None = None
    #: Delayed-label performance (`mlsd.monitoring.performance_live`): a daemon thread
    #: recomputes, every `performance_every_s` seconds, the last `performance_window_s` of
    #: this server's prediction log against the labels landed by now, from `labels` (a
    #: dataset folder, or the label table `mlsd stream labels` writes); `mlsd_performance_*`
    #: gauges and the dashboard's performance panel. None: off.
    labels: str | None = None
    performance_window_s: float = 86_400.0
    performance_every_s: float = 60.0
    #: Follow the registry's rollouts (layers, shares, ends) and run the canary controllers
    #: this process holds the lease of; `rollout_poll_s` is how often the change counter is
    #: read (a change reaches every server within it).
    watch_rollouts: bool = True
    rollout_poll_s: float = 0.2
    #: Shadow scorings waiting at most (beyond: dropped, counted in mlsd_shadow_dropped_total).
    shadow_capacity: int = 1024
    #: Score shadows in a process of their own, which writes their prediction-log records
    #: itself (`mlsd.inference.shadow_process`): most of their work leaves this process's GIL.
    #: One more process per server, so off for an embedded app; `mlsd serve` turns it on.
    #: Opened by `mlsd.serving.app.build_service` (the child opens the settings' log).
    shadow_process: bool = False
    #: The dashboard page (`/ui`, `mlsd.monitoring.dashboard`): a thread reads the service's
    #: counters every `dashboard_sample_s` seconds (nothing is added per request).
    dashboard: bool = True
    dashboard_sample_s: float = 5.0
    #: Run the job queue's worker in this process (once the models are loaded). Off for a
    #: server whose jobs `mlsd worker` processes run, on a shared (Redis) queue: batch work
    #: then never competes with online scoring for this process's GIL.
    run_jobs: bool = True


class Service:
    """Everything the handlers use, built from settings and options."""

    def __init__(
        self,
        settings: Settings,
        host: ModelHost,
        *,
        options: ServeOptions | None = None,
        features: FeatureSource | None = None,
        cache: PredictionCache | None = None,
        prediction_log: Any | None = None,
        jobs: Any | None = None,
        metrics: ServingMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or ServeOptions()
        self.metrics = metrics or ServingMetrics()
        self.host = host
        self.features = features
        self.cache = cache
        self.prediction_log = prediction_log
        if prediction_log is not None:
            log = prediction_log
            self.metrics.watch_prediction_log(lambda: int(log.stats().buffered))
        self.jobs = jobs
        self.breaker = CircuitBreaker(
            self.options.breaker_failures,
            self.options.breaker_reset_s,
            self.options.feature_timeout_s,
            first_probe_s=min(self.options.breaker_first_probe_s, self.options.breaker_reset_s),
            name="online store",
        )
        self.endpoints: dict[str, Endpoint] = {}
        #: The online store's calls off the event loop (a network store only), each
        #: request waiting at most `feature_timeout_s`: a stalled Redis never freezes scoring.
        self.offload = (
            Offloader(self.breaker, self.options.feature_timeout_s, name="online store")
            if isinstance(features, FeatureStore)
            and not isinstance(features.online, SqliteOnlineStore)
            else None
        )
        self.pipeline = ScoringPipeline(
            FeatureAssembler(
                features,
                self.metrics,
                breaker=self.breaker if features is not None else None,
                fail_when_degraded=self.options.fail_when_degraded,
                provided=self.options.provided_features,
                probe=(
                    StoreProbe(
                        features.online_watermarks,
                        interval_s=self.options.store_probe_s,
                        submit=self.offload.submit if self.offload is not None else None,
                    )
                    if isinstance(features, FeatureStore)
                    else None
                ),
                offload=self.offload,
            ),
            self.metrics,
            cache=cache,
            pinned=self._pinned,
            shadow_capacity=self.options.shadow_capacity,
            freshness_s=(
                self.options.cache_freshness_s
                if self.options.cache_freshness_s is not None
                else settings.cache_freshness_seconds
            ),
        )
        self.pipeline.add_observer(MetricsObserver(self.metrics))
        #: The prediction log's observer (None without a log).
        self.log_observer = (
            PredictionLogObserver(prediction_log) if prediction_log is not None else None
        )
        if self.log_observer is not None:
            self.pipeline.add_observer(self.log_observer, critical=True)
        self.default_model: str | None = None
        self.loaded = False
        self.load_error: str | None = None
        self.started_at = datetime.now(UTC)
        self.owned: list[Any] = []  # backends opened for this service, closed with it
        #: The live drift monitor (`mlsd.serving.app.install_drift`) and the dashboard's
        #: data (`mlsd.serving.routes_ui.install`), when installed.
        self.drift: DriftMonitor | None = None
        self.dashboard: Dashboard | None = None
        #: The dashboard's "performance as labels land" panel: `() -> figures or None`
        #: (None: no labels yet); set by `mlsd.serving.app.install_performance`.
        self.performance: PerformanceProvider | None = None
        self.performance_monitor: PerformanceMonitor | None = None
        self._rerun: tuple[tuple[str, int], set[tuple[str, str]]] | None = None
        host.on_swap(self._swapped)
        host.on_load(self._loaded)
        self.rollouts = self._rollout_agent()

    def _rollout_agent(self) -> RolloutAgent | None:
        """The rollout agent, when the models come from a registry (which holds the state)."""
        registry = self.host.registry
        if not isinstance(registry, Registry):
            return None
        views = self.features.view_versions if isinstance(self.features, FeatureStore) else None
        return RolloutAgent(
            RolloutManager(registry, views), self.pipeline, self.host,
            poll_s=self.options.rollout_poll_s,
        )  # fmt: skip

    # -- wiring -------------------------------------------------------------------------------

    def _loaded(self, model: LoadedModel, seconds: float) -> None:
        self.metrics.model_loads.labels(model.name, str(model.version)).inc()
        self.metrics.model_load_seconds.labels(model.name).observe(seconds)

    def _swapped(self, old: LoadedModel | None, new: LoadedModel) -> None:
        self.metrics.loaded_models.set(len(self.host.models()))
        if old is not None:
            self.metrics.model_switches.labels(new.name).inc()
            if self.cache is not None:
                self.cache.clear_model(old.name)

    def add_endpoint(self, name: str, alias: str | None, version: int | None = None) -> Endpoint:
        """Serve `name@alias` (or `name/version`) as the endpoint `name`; the first is default."""
        batching = self.options.batching_per_model.get(name, self.options.batching)
        endpoint = HostedEndpoint(
            self.host, name, alias, batching,
            on_batch=lambda m, n: self.metrics.child(self.metrics.batch_size, m.name).observe(n),
            version=version, metrics=self.metrics,
        )  # fmt: skip
        self.endpoints[name] = endpoint
        self.pipeline.add_endpoint(name, default_variant(endpoint, alias, version))
        if self.default_model is None:
            self.default_model = name
        return endpoint

    def load(self, ref: str) -> LoadedModel:
        """Load a model reference; the first reference of a name also becomes its endpoint."""
        name, alias, version = parse_ref(ref)
        model = self.host.load(ref)
        if name not in self.endpoints:
            self.add_endpoint(name, alias, version)
        self.metrics.loaded_models.set(len(self.host.models()))
        return model

    def load_all(self) -> None:
        """Load every model of the options; remember the first error for /v2/health/ready."""
        try:
            for ref in self.options.models:
                self.load(ref)
        except MlsdError as exc:
            if exc.message != self.load_error:  # once per reason, not once per retry
                log.error("model load failed: %s", exc.message)
            self.load_error = exc.message
            raise
        self.load_error = None
        self.loaded = True
        if self.options.watch_aliases:
            self.host.start()
        if self.rollouts is not None:
            if self.options.watch_rollouts:
                self.rollouts.start()
            else:
                self.rollouts.sync(force=True)  # the state at start, followed on demand

    def load_when_available(self, stop: threading.Event) -> bool:
        """`load_all`, retried until it works or `stop` is set; True once loaded.

        Whatever failed is retried: a model not in the registry yet (no `fraud@champion`:
        NotFoundError), the registry down (UnavailableError), and an alias pointing at a
        version that does not load (a corrupt artifact, features this server does not serve)
        — the alias may be moved back, and a server that gave up would answer 503 forever
        while its liveness says OK. The wait starts at `options.load_retry_s` and doubles up
        to `options.load_retry_max_s`; the reason is in `load_error` (and /v2/health/ready).
        """
        wait = self.options.load_retry_s
        while not stop.is_set():
            try:
                self.load_all()
                return True
            except (NotFoundError, UnavailableError):
                stop.wait(self.options.load_retry_s)  # expected while the registry fills
            except MlsdError:
                stop.wait(wait)
                wait = min(wait * 2.0, max(self.options.load_retry_max_s, wait))
        return False

    def start_jobs(self) -> None:
        """Start the job queue's worker, if this service runs one (after the models load:
        a job run before would fail on a model not loaded yet)."""
        if self.jobs is not None and self.options.run_jobs:
            self.jobs.start(self.score_frame)

    def observe_lag(self) -> None:
        """`mlsd_alias_lagging` for every followed alias: 1 while it points at a version this
        server could not load (read at each scrape)."""
        lagging = self.host.lagging
        for name, alias in self.host.followed():
            self.metrics.alias_lag.labels(name, alias).set(1 if (name, alias) in lagging else 0)

    def close(self) -> None:
        """Stop the watchers, the shadow process and the job queue, flush the log, release
        backends."""
        if self.rollouts is not None:
            self.rollouts.stop()
        self.pipeline.close()
        self.host.stop()
        if self.jobs is not None:
            self.jobs.stop()
        if self.prediction_log is not None:
            self.prediction_log.close()
        if self.cache is not None:
            self.cache.close()
        if self.offload is not None:
            self.offload.close()
        for resource in self.owned:
            resource.close()
        self.owned.clear()

    # -- lookups for handlers ------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Models loaded and warmed."""
        return self.loaded and self.host.ready

    def check(self, name: str | None = None) -> str:
        """The endpoint name a request for `name` goes to (the default when None).

        Before the models are loaded (or when loading failed) that is 503, not 404: the
        client should retry, not conclude the model does not exist.
        """
        key = name or self.default_model
        if key is None or key not in self.endpoints:
            if not self.loaded:
                reason = self.load_error or "models are still loading"
                raise UnavailableError(f"not ready: {reason}", field="model")
            raise NotFoundError(f"no endpoint serves model {key!r}", field="model")
        return key

    async def score(self, request: ScoringRequest) -> ScoredBatch:
        """Score through the pipeline, once the named endpoint exists (503 while loading)."""
        try:
            return await self.pipeline.score(request)
        except NotFoundError as exc:
            if exc.field != "model":
                raise
            self.check(request.model)  # 503 while loading, else the 404 with its name
            raise

    def _pinned(self, name: str, version: int) -> Endpoint:
        self.check(name)
        return VersionEndpoint(self.host.get(name, version=version), self.metrics)

    def endpoint(self, name: str) -> Endpoint:
        """The endpoint of a model name."""
        if name not in self.endpoints:
            raise NotFoundError(f"no endpoint serves model {name!r}", field="model")
        return self.endpoints[name]

    # -- async jobs ---------------------------------------------------------------------------

    def _logged_by_earlier_runs(
        self, job: str, attrs: Mapping[Any, Any]
    ) -> set[tuple[str, str]] | None:
        """The job's `(row id, variant)` already logged, for a run after the first (cached
        for the run: one read of the log per run, not per chunk)."""
        attempt = attrs.get("attempt") or 1
        if attempt < 2 or self.prediction_log is None:
            return None
        key = (job, int(attempt))
        if self._rerun is None or self._rerun[0] != key:
            since = attrs.get("since")  # a margin for the clocks of several servers
            start = (
                datetime.fromisoformat(since) - timedelta(minutes=5)
                if isinstance(since, str)
                else None
            )
            try:
                ids = self.prediction_log.logged_ids(f"{job}:", start)
            except MlsdError as exc:  # the log's store is down: score the job, say what it costs
                log.warning(
                    "job %s, run %d: cannot read which rows earlier runs logged (%s): rows "
                    "they logged will be logged again", job, attempt, exc.message,
                )  # fmt: skip
                ids = set()
            else:
                log.info("job %s, run %d: %d rows logged by earlier runs", job, attempt, len(ids))
            self._rerun = (key, ids)
        return self._rerun[1]

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score one chunk of a job (worker thread): raw transactions -> verdicts, logged.

        Logged rows have `endpoint="job"` and request id `{job id}:{transaction id}`; the
        job id is `frame.attrs["job_id"]` when the runner sets it, else one made up per chunk.
        A job run again (`attrs["attempt"]` 2 or more: its server was killed, or its worker
        lost it) logs only the rows its earlier runs did not: the ids already in the log
        are read once per run, so every job row is logged exactly once.
        """
        import numpy as np
        import pandas as pd

        from mlsd.serving.schemas import transactions_from_records

        txs = transactions_from_records(frame.to_dict(orient="records"))
        job = str(frame.attrs.get("job_id") or f"job-{uuid.uuid4().hex[:12]}")
        name = self.check(frame.attrs.get("model"))
        logged = self._logged_by_earlier_runs(job, frame.attrs)
        batch = self.pipeline.score_sync(
            ScoringRequest(
                job, "job", txs, model=name, row_ids=[f"{job}:{t.transaction_id}" for t in txs],
                logged=logged,
            )
        )  # fmt: skip
        model = batch.model
        return pd.DataFrame(
            {
                "transaction_id": np.array([t.transaction_id for t in txs], dtype=np.int64),
                "score": batch.scores,
                "decision": batch.decisions,
                "model": model.name,
                "version": model.version,
                "variant": batch.variant,
                "degraded": batch.degraded,
            }
        )
