"""The serving state of one app: host, endpoints, scorers, cache, log, metrics, wired once.

Handlers reach it as `request.app.state.service`; nothing in a handler builds
or chooses a backend.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlsd.errors import MlsdError, NotFoundError, UnavailableError
from mlsd.inference.batcher import BatchConfig
from mlsd.inference.breaker import CircuitBreaker
from mlsd.inference.cache import PredictionCache
from mlsd.inference.endpoint import Endpoint, HostedEndpoint
from mlsd.inference.host import LoadedModel, ModelHost, parse_ref
from mlsd.inference.metrics import ServingMetrics
from mlsd.inference.scorer import FeatureSource, ScoredBatch, Scorer
from mlsd.predlog.record import PredictionRecord
from mlsd.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlsd.data.transaction import Transaction

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
    breaker_reset_s: float = 5.0
    watch_aliases: bool = True
    #: GC and GIL settings for a scoring process (`mlsd.serving.tuning`): process-wide,
    #: so off for an embedded app; `mlsd serve` and the demo turn them on.
    tune_process: bool = False


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
        self.jobs = jobs
        self.breaker = CircuitBreaker(
            self.options.breaker_failures,
            self.options.breaker_reset_s,
            self.options.feature_timeout_s,
            name="online store",
        )
        self.endpoints: dict[str, Endpoint] = {}
        self.scorers: dict[str, Scorer] = {}
        self.default_model: str | None = None
        self.loaded = False
        self.load_error: str | None = None
        self.started_at = datetime.now(UTC)
        self.owned: list[Any] = []  # backends opened for this service, closed with it
        host.on_swap(self._swapped)
        host.on_load(self._loaded)

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
        self.scorers[name] = Scorer(
            endpoint,
            self.features,
            self.metrics,
            cache=self.cache,
            breaker=self.breaker if self.features is not None else None,
            fail_when_degraded=self.options.fail_when_degraded,
            on_scored=self._log_batch if self.prediction_log is not None else None,
        )
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
            self.load_error = exc.message
            log.error("model load failed: %s", exc.message)
            raise
        self.loaded = True
        if self.options.watch_aliases:
            self.host.start()

    def close(self) -> None:
        """Stop the watcher and the job queue, flush the log, release backends."""
        self.host.stop()
        if self.jobs is not None:
            self.jobs.stop()
        if self.prediction_log is not None:
            self.prediction_log.close()
        if self.cache is not None:
            self.cache.close()
        for resource in self.owned:
            resource.close()
        self.owned.clear()

    # -- lookups for handlers ------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Models loaded and warmed."""
        return self.loaded and self.host.ready

    def scorer(self, name: str | None = None) -> Scorer:
        """The scorer of a model name (the default model when None).

        Before the models are loaded (or when loading failed) that is 503, not 404: the
        client should retry, not conclude the model does not exist.
        """
        key = name or self.default_model
        if key is None or key not in self.scorers:
            if not self.loaded:
                reason = self.load_error or "models are still loading"
                raise UnavailableError(f"not ready: {reason}", field="model")
            raise NotFoundError(f"no endpoint serves model {key!r}", field="model")
        return self.scorers[key]

    def endpoint(self, name: str) -> Endpoint:
        """The endpoint of a model name."""
        if name not in self.endpoints:
            raise NotFoundError(f"no endpoint serves model {name!r}", field="model")
        return self.endpoints[name]

    # -- async jobs ---------------------------------------------------------------------------

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score one chunk of a job (worker thread): raw transactions -> verdicts, logged.

        Logged rows have `endpoint="job"` and request id `{job id}:{transaction id}`; the
        job id is `frame.attrs["job_id"]` when the runner sets it, else one made up per chunk.
        """
        import numpy as np
        import pandas as pd

        from mlsd.serving.schemas import transactions_from_records

        started = time.perf_counter()
        scorer = self.scorer(frame.attrs.get("model"))
        txs = transactions_from_records(frame.to_dict(orient="records"))
        model = scorer.endpoint.current()
        values, _, degraded = scorer.build(txs, model.feature_names)
        scores = model.predict(values)
        if self.prediction_log is not None:
            job = str(frame.attrs.get("job_id") or f"job-{uuid.uuid4().hex[:12]}")
            self.log_rows(
                model, values, scores,
                request_ids=[f"{job}:{t.transaction_id}" for t in txs],
                latency_s=time.perf_counter() - started, endpoint="job", degraded=degraded,
                transactions=txs,
            )  # fmt: skip
        return pd.DataFrame(
            {
                "transaction_id": np.array([t.transaction_id for t in txs], dtype=np.int64),
                "score": scores,
                "decision": np.where(scores >= model.threshold, "fraud", "legit"),
                "model": model.name,
                "version": model.version,
                "degraded": degraded,
            }
        )

    # -- prediction log -----------------------------------------------------------------------

    def log_rows(
        self,
        model: LoadedModel,
        values: np.ndarray,
        scores: np.ndarray,
        *,
        request_ids: Sequence[str],
        latency_s: float,
        endpoint: str,
        degraded: bool = False,
        variant: str = "",
        transactions: Sequence[Transaction] | None = None,
    ) -> None:
        """Log rows scored outside `/v1/score` (V2 tensors, jobs): one record per row.

        `transactions`, when the rows came from raw transactions (jobs), fills in the
        transaction and entity keys; V2 tensors have none.
        """
        if self.prediction_log is None:
            return
        now = datetime.now(UTC)
        name = model.name
        names = model.feature_names  # one shared tuple: the log encodes it once per flush
        version = str(model.version)
        threshold = model.threshold
        latency_ms = latency_s * 1000.0
        records = [
            PredictionRecord(  # positional: 5x cheaper than keywords for a slots class
                rid, now, name, version, row, score,
                "fraud" if score >= threshold else "legit",
                threshold, latency_ms, degraded, names, endpoint, variant,
            )
            for rid, row, score in zip(request_ids, values.tolist(), scores.tolist(), strict=True)
        ]  # fmt: skip
        for record, tx in zip(records, transactions or (), strict=False):
            record.transaction_id = tx.transaction_id
            record.customer_id = tx.customer_id
            record.terminal_id = tx.terminal_id
            record.tx_time = tx.timestamp
        self.prediction_log.append(records)

    def _log_batch(self, batch: ScoredBatch, request_id: str) -> None:
        plog = self.prediction_log
        if plog is None:
            return
        now = datetime.now(UTC)
        model = batch.model
        name, threshold = model.name, model.threshold
        names = model.feature_names  # one shared tuple: the log encodes it once per flush
        latency_ms = batch.latency_s * 1000.0
        version = str(model.version)
        degraded, variant = batch.degraded, batch.variant
        many = len(batch.transactions) > 1
        records = [
            PredictionRecord(  # positional: 5x cheaper than keywords for a slots class
                f"{request_id}:{tx.transaction_id}" if many else request_id,
                now, name, version, row, score,
                "fraud" if score >= threshold else "legit",  # = ScoredBatch.decisions()
                threshold, latency_ms, degraded, names, "score", variant,
                tx.transaction_id, tx.customer_id, tx.terminal_id, tx.timestamp,
            )
            for tx, row, score in zip(
                batch.transactions, batch.values.tolist(), batch.scores.tolist(), strict=True
            )
        ]  # fmt: skip
        plog.append(records)
