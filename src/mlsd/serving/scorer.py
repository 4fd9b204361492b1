"""The scoring pipeline behind `POST /v1/score`: features -> cache -> model -> verdicts.

One online-store round trip per request for the stored features, request-time
features computed in process, cached scores reused, the rest scored by the
endpoint (micro-batched), each verdict logged. When the online store fails or
its circuit breaker is open, the request is scored on request-time features
alone and flagged degraded (or refused with 503 if so configured).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mlsd.data import schema
from mlsd.errors import UnavailableError
from mlsd.serving.breaker import CircuitBreaker
from mlsd.serving.cache import PredictionCache, hash_rows
from mlsd.serving.endpoint import Endpoint, Prediction
from mlsd.serving.host import LoadedModel
from mlsd.serving.metrics import ServingMetrics
from mlsd.serving.request_features import REQUEST_FEATURES, request_feature_columns
from mlsd.serving.schemas import Transaction


class FeatureSource(Protocol):
    """What scoring needs from the feature store (`mlsd.features` store has it)."""

    def online_vectors(self, requests: Sequence[Mapping[str, Any]], features: Sequence[str]) -> Any:
        """`.values` (n, k) float32 (NaN where missing) and `.status` [{feature: status}]."""
        ...


@dataclass(frozen=True)
class ScoredBatch:
    """Everything known about one scoring request, for the response and the log."""

    transactions: Sequence[Transaction]
    values: np.ndarray
    scores: np.ndarray
    cached: np.ndarray
    statuses: list[dict[str, str]]
    model: LoadedModel
    degraded: bool
    latency_s: float

    def decisions(self) -> list[str]:
        """`fraud` where the score reaches the model's threshold, else `legit`."""
        return ["fraud" if s >= self.model.threshold else "legit" for s in self.scores.tolist()]


class Scorer:
    """Scores raw transactions with one endpoint."""

    def __init__(
        self,
        endpoint: Endpoint,
        features: FeatureSource | None,
        metrics: ServingMetrics,
        *,
        cache: PredictionCache | None = None,
        breaker: CircuitBreaker | None = None,
        fail_when_degraded: bool = False,
        on_scored: Callable[[ScoredBatch, str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.features = features
        self.metrics = metrics
        self.cache = cache
        self.breaker = breaker
        self.fail_when_degraded = fail_when_degraded
        self.on_scored = on_scored

    def _lookup(
        self, txs: Sequence[Transaction], stored: list[str]
    ) -> tuple[np.ndarray, list[dict[str, str]], bool]:
        n = len(txs)
        if not stored:
            return np.empty((n, 0), dtype=np.float32), [{} for _ in txs], False
        if self.features is None:
            return self._missing(n, stored, "missing"), [], False
        requests = [
            {
                schema.CUSTOMER_ID: tx.customer_id,
                schema.TERMINAL_ID: tx.terminal_id,
                schema.TX_DATETIME: tx.timestamp,
            }
            for tx in txs
        ]
        started = time.perf_counter()
        try:
            if self.breaker is not None:
                found = self.breaker.call(self.features.online_vectors, requests, stored)
            else:
                found = self.features.online_vectors(requests, stored)
        except UnavailableError:
            self.metrics.feature_latency.labels("unavailable").observe(
                time.perf_counter() - started
            )
            self._breaker_gauge()
            if self.fail_when_degraded:
                raise
            self.metrics.degraded.labels("online_store").inc()
            return self._missing(n, stored, "unavailable"), [], True
        self.metrics.feature_latency.labels("ok").observe(time.perf_counter() - started)
        self._breaker_gauge()
        values = np.asarray(found.values, dtype=np.float32).reshape(n, len(stored))
        return values, [dict(s) for s in found.status], False

    @staticmethod
    def _missing(n: int, stored: list[str], status: str) -> np.ndarray:
        return np.full((n, len(stored)), np.nan, dtype=np.float32)

    def _breaker_gauge(self) -> None:
        if self.breaker is not None:
            self.metrics.breaker_open.set(0 if self.breaker.state.value == "closed" else 1)

    def build(
        self, txs: Sequence[Transaction], names: Sequence[str]
    ) -> tuple[np.ndarray, list[dict[str, str]], bool]:
        """The (n, k) feature matrix in `names` order, a status per feature, degraded flag."""
        stored = [n for n in names if n not in REQUEST_FEATURES]
        found, found_status, degraded = self._lookup(txs, stored)
        columns = request_feature_columns(txs, names)
        values = np.empty((len(txs), len(names)), dtype=np.float32)
        position = {name: i for i, name in enumerate(stored)}
        for j, name in enumerate(names):
            values[:, j] = columns[name] if name in columns else found[:, position[name]]
        default = "unavailable" if degraded else "missing"
        statuses = []
        for i in range(len(txs)):
            row = found_status[i] if i < len(found_status) else {}
            statuses.append(
                {name: "request" if name in columns else row.get(name, default) for name in names}
            )
        return values, statuses, degraded

    async def _predict(
        self, values: np.ndarray, model: LoadedModel
    ) -> tuple[Prediction, np.ndarray]:
        n = len(values)
        cached = np.zeros(n, dtype=bool)
        if self.cache is None:
            return await self.endpoint.predict(values), cached
        hashes = hash_rows(values)
        got = self.cache.get_many(model.key, hashes)
        miss = [i for i, score in enumerate(got) if score is None]
        hits = n - len(miss)
        if hits:
            self.metrics.cache_hits.labels(model.name).inc(hits)
        if miss:
            self.metrics.cache_misses.labels(model.name).inc(len(miss))
        if not miss:
            scores = np.asarray(got, dtype=np.float64)
            return Prediction(scores, model), ~cached
        fresh = await self.endpoint.predict(values[miss] if hits else values)
        if fresh.model.key != model.key:  # the alias moved meanwhile: score all rows anew
            return await self.endpoint.predict(values), cached
        self.cache.put_many(model.key, [hashes[i] for i in miss], fresh.scores.tolist())
        if not hits:
            return fresh, cached
        scores = np.array([np.nan if s is None else s for s in got], dtype=np.float64)
        scores[miss] = fresh.scores
        cached[:] = True
        cached[miss] = False
        return Prediction(scores, model), cached

    async def score(self, txs: Sequence[Transaction], request_id: str) -> ScoredBatch:
        """Score transactions; raises UnavailableError only in fail-when-degraded mode."""
        started = time.perf_counter()
        model = self.endpoint.current()
        values, statuses, degraded = self.build(txs, model.feature_names)
        prediction, cached = await self._predict(values, model)
        if prediction.model.feature_names != model.feature_names:  # new version, new features
            values, statuses, degraded = self.build(txs, prediction.model.feature_names)
            prediction = await self.endpoint.predict(values)
            cached = np.zeros(len(txs), dtype=bool)
        used = prediction.model
        status = "degraded" if degraded else "ok"
        version = str(used.version)
        self.metrics.model_requests.labels(used.name, version, status).inc()
        self.metrics.predictions.labels(used.name, version, status).inc(len(txs))
        batch = ScoredBatch(
            txs, values, prediction.scores, cached, statuses, used, degraded,
            time.perf_counter() - started,
        )  # fmt: skip
        if self.on_scored is not None:
            self.on_scored(batch, request_id)
        return batch
