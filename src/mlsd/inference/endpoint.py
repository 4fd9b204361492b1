"""Endpoints: what request handlers call to score rows.

An `Endpoint` hides which model version answers. `HostedEndpoint` serves the
version an alias of the host points at, through a micro-batcher. Shadow, A/B
and canary routing are later layers that implement the same protocol and wrap
one or more endpoints, so no handler ever branches on a rollout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mlsd.inference.batcher import BatchConfig, MicroBatcher
from mlsd.inference.host import ModelHost
from mlsd.inference.metrics import ServingMetrics
from mlsd.inference.runtimes import check_matrix
from mlsd.inference.spec import LoadedModel


def timed_predict(
    model: LoadedModel, values: np.ndarray, metrics: ServingMetrics | None
) -> np.ndarray:
    """`model.predict(values)`, its duration observed in `mlsd_model_inference_duration_seconds`
    (one memoised child per model name: a dict lookup, no `labels()` call)."""
    if metrics is None:
        return model.predict(values)
    started = time.perf_counter()
    scores = model.predict(values)
    metrics.child(metrics.inference_latency, model.name).observe(time.perf_counter() - started)
    return scores


@dataclass(frozen=True)
class Prediction:
    """Scores of a batch of rows, the model version that produced them, and (for rollout
    layers such as A/B or canary) the name of the variant that answered."""

    scores: np.ndarray
    model: LoadedModel
    variant: str = ""


class Endpoint(Protocol):
    """Scores rows built for `current().feature_names`."""

    @property
    def name(self) -> str:
        """The name clients use for this endpoint (the model name)."""
        ...

    def current(self) -> LoadedModel:
        """The version that would answer now (its signature tells which features to build)."""
        ...

    async def predict(self, values: np.ndarray) -> Prediction:
        """Fraud probability of each row of `values` (n, k) float32."""
        ...


class HostedEndpoint:
    """The version `name@alias` points at in the host (or a pinned `name/version`), batched."""

    def __init__(
        self,
        host: ModelHost,
        name: str,
        alias: str | None,
        batching: BatchConfig | None = None,
        *,
        on_batch: Callable[[LoadedModel, int], None] | None = None,
        version: int | None = None,
        metrics: ServingMetrics | None = None,
    ) -> None:
        self.host = host
        self._name = name
        self.alias = alias
        self.version = version
        self._on_batch = on_batch
        self.metrics = metrics
        self.batcher: MicroBatcher[LoadedModel] = MicroBatcher(self._run, batching)

    @property
    def name(self) -> str:
        """The model name."""
        return self._name

    def current(self) -> LoadedModel:
        """The version the alias points at now (or the pinned version)."""
        return self.host.get(self._name, alias=self.alias, version=self.version)

    def _run(self, values: np.ndarray) -> tuple[np.ndarray, LoadedModel]:
        model = self.current()  # read once per batch: a switch lands between batches
        if self._on_batch is not None:
            self._on_batch(model, len(values))
        return timed_predict(model, values, self.metrics), model

    async def predict(self, values: np.ndarray) -> Prediction:
        """Score rows with the current version, batched with concurrent calls."""
        values = check_matrix(values, len(self.current().feature_names))
        scores, model = await self.batcher.submit(values)
        return Prediction(scores, model)


class VersionEndpoint:
    """One fixed loaded version, called directly (V2 `/versions/{v}` requests)."""

    def __init__(self, model: LoadedModel, metrics: ServingMetrics | None = None) -> None:
        self._model = model
        self.metrics = metrics

    @property
    def name(self) -> str:
        """The model name."""
        return self._model.name

    def current(self) -> LoadedModel:
        """Always the same version."""
        return self._model

    async def predict(self, values: np.ndarray) -> Prediction:
        """Score rows with this version."""
        values = check_matrix(values, len(self._model.feature_names))
        return Prediction(timed_predict(self._model, values, self.metrics), self._model)
