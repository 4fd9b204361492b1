"""THE scoring pipeline: every entry point scores through it.

`POST /v1/score`, V2 infer, async jobs and the stream processor all hand a
`ScoringRequest` to one `ScoringPipeline`, which does, in this order:

    route (default variant, then each routing layer: primary + shadows)
      -> the variant's features (online store + request-time transforms, or V2 rows)
      -> the variant's cache -> its model -> decisions at its threshold
      -> observers (prediction log, metrics, later shadow comparison, drift, audit ...)

The primary's batch answers the caller; shadows are scored after it, off the response path,
and only observers see them: by the shadow queue's worker thread
(`mlsd.inference.shadow_queue`), or, once `use_shadow_process` was called (`mlsd serve`),
by a process of their own that also writes their prediction-log records, so their work
leaves this process's GIL (`mlsd.inference.shadow_process`). Both are bounded: a full
queue drops and counts. A route may name a fallback (a canary's champion): when the
primary raises, the failure goes to the failure observers and the fallback answers.
Routing layers and observers are installed through `install` and `add_observer`, never by
mutating a handler.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from mlsd.errors import NotFoundError, ValidationError
from mlsd.inference.assemble import Built, FeatureAssembler
from mlsd.inference.cache import PredictionCache
from mlsd.inference.cached import Freshness, predict_cached, predict_cached_sync
from mlsd.inference.endpoint import Endpoint, VersionEndpoint
from mlsd.inference.metrics import ServingMetrics
from mlsd.inference.observers import (
    FailureObserver,
    Role,
    ScoredBatch,
    ScoringObserver,
    ScoringRequest,
    TickObserve,
    TickObserver,
    TwinnedObserver,
    decide,
)
from mlsd.inference.routing import Route, RoutingLayer, Variant
from mlsd.inference.runtimes import check_matrix
from mlsd.inference.shadow_process import ShadowProcess
from mlsd.inference.shadow_queue import Item, ShadowQueue
from mlsd.inference.spec import LoadedModel
from mlsd.settings import Settings

log = logging.getLogger(__name__)

#: The endpoint a pinned request names: (model name, version) -> endpoint of that version.
PinnedEndpoints = Callable[[str, int], Endpoint]
#: A caller's own feature rows for the version about to answer (its feature names), or
#: None to let the assembler build them (a stream processor's columnar batch).
RowBuilder = Callable[[tuple[str, ...]], "np.ndarray | None"]


class ScoringPipeline:
    """Routes, builds features, caches, scores, decides and tells the observers."""

    def __init__(
        self,
        assembler: FeatureAssembler,
        metrics: ServingMetrics,
        *,
        cache: PredictionCache | None = None,
        pinned: PinnedEndpoints | None = None,
        shadow_capacity: int = 1024,
        freshness_s: float | None = None,
    ) -> None:
        if freshness_s is not None and not (freshness_s >= 0 and math.isfinite(freshness_s)):
            raise ValidationError(
                f"cache freshness tolerance must be >= 0 seconds, got {freshness_s}",
                field="cache_freshness_s",
            )
        self.assembler = assembler
        self.metrics = metrics
        self.cache = cache
        #: The feature-freshness bound's tolerance (µs); None: off (`mlsd.inference.cached`).
        self.freshness_us = None if freshness_s is None else int(freshness_s * 1_000_000)
        self._pinned = pinned
        self._routes: dict[str | None, Route] = {}
        self._layers: list[RoutingLayer] = []
        #: (observer, critical, its `observe_soon` when it has one: the event loop's requests
        #: await it before they answer, `mlsd.inference.observers.TickObserver`)
        self._observers: list[tuple[ScoringObserver, bool, TickObserve | None]] = []
        self._failure_observers: list[FailureObserver] = []
        self._failed_variants: set[str] = set()
        self.shadow_capacity = shadow_capacity
        #: Shadows scored by a thread (all of them, without a shadow process).
        self.shadows = ShadowQueue(self._score_shadows, metrics, shadow_capacity)
        #: Shadows scored by a process of their own (`use_shadow_process`), or None.
        self.shadow_process: ShadowProcess | None = None
        self._logged_apart: ScoringObserver | None = None
        #: Observers with a twin in the shadow process, by twin id (`TwinnedObserver`).
        self._twinned: dict[int, TwinnedObserver] = {}
        self._twin_ids = itertools.count(1)

    # -- registration -------------------------------------------------------------------------

    def add_endpoint(self, name: str, variant: Variant) -> None:
        """Serve endpoint `name` by `variant` by default; the first endpoint is the default."""
        route = Route(variant)
        self._routes[name] = route
        self._routes.setdefault(None, route)

    def endpoint_names(self) -> list[str]:
        """The endpoint names served, default first."""
        default = self._routes.get(None)
        names = [n for n in self._routes if n is not None]
        return sorted(names, key=lambda n: (self._routes[n] is not default, n))

    def install(self, layer: RoutingLayer) -> None:
        """Add a routing layer on top of those installed (it sees their route)."""
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"a routing layer named {layer.name!r} is already installed")
        self._layers.append(layer)

    def uninstall(self, name: str) -> None:
        """Remove the routing layer called `name`."""
        before = len(self._layers)
        self._layers = [layer for layer in self._layers if layer.name != name]
        if len(self._layers) == before:
            raise NotFoundError(f"no routing layer named {name!r}", field="layer")

    @property
    def layers(self) -> tuple[RoutingLayer, ...]:
        """The routing layers, bottom first."""
        return tuple(self._layers)

    def add_observer(self, observer: ScoringObserver, *, critical: bool = False) -> None:
        """Show every scored batch to `observer`.

        A critical observer's error fails the request (the prediction log: no answer without
        its record); any other observer's error is logged and the request goes on.
        """
        soon = observer.observe_soon if isinstance(observer, TickObserver) else None
        self._observers.append((observer, critical, soon))
        if isinstance(observer, TwinnedObserver):
            self._twinned[next(self._twin_ids)] = observer

    @property
    def observers(self) -> tuple[ScoringObserver, ...]:
        """The observers, in the order they are told."""
        return tuple(o for o, _, _ in self._observers)

    def remove_observer(self, observer: ScoringObserver) -> None:
        """Stop showing batches to `observer`."""
        self._observers = [entry for entry in self._observers if entry[0] is not observer]
        self._twinned = {t: o for t, o in self._twinned.items() if o is not observer}

    def add_failure_observer(self, observer: FailureObserver) -> None:
        """Tell `observer` of every variant that raised while scoring (primary or shadow)."""
        self._failure_observers.append(observer)

    def remove_failure_observer(self, observer: FailureObserver) -> None:
        """Stop telling `observer` of failures."""
        self._failure_observers = [o for o in self._failure_observers if o is not observer]

    def use_shadow_process(
        self, settings: Settings, log: ScoringObserver | None = None, **limits: Any
    ) -> ShadowProcess:
        """Score shadows from now on in a process of their own (the thread keeps those it
        cannot score: `mlsd.inference.shadow_process`), started at the first shadow.

        `log` is this pipeline's prediction-log observer (None: it logs nothing): the
        process writes the shadows' records to the log `settings` names itself, so `log` is
        not told of the shadows it scored. An observer with a twin (`TwinnedObserver`:
        metrics, live drift) gets one summary per variant and job from its twin in the
        process; every other observer is told of each shadow. `limits` are
        `ShadowProcess` keywords (linger_s, max_batch, max_in_flight, hung_s).
        """
        if self.shadow_process is not None:
            raise ValueError("this pipeline already has a shadow process")
        self.shadow_process = ShadowProcess(
            settings, self.metrics, self._scored_apart, self._score_shadows_later,
            twinned=self._twins, log_predictions=log is not None,
            capacity=self.shadow_capacity, **limits,
        )  # fmt: skip
        self._logged_apart = log
        return self.shadow_process

    def close(self) -> None:
        """Stop the shadow process, if any, once it scored what it holds (a few seconds)."""
        if self.shadow_process is not None:
            self.shadow_process.close()

    # -- routing ------------------------------------------------------------------------------

    def route(self, request: ScoringRequest) -> Route:
        """The route of one request: its endpoint's default (or pinned version), then layers."""
        if request.version is not None:
            route = Route(self._pinned_variant(request))
        else:
            found = self._routes.get(request.model)
            if found is None:
                raise NotFoundError(f"no endpoint serves model {request.model!r}", field="model")
            route = found
        for layer in self._layers:
            route = layer.route(request, route)
        return route

    def _pinned_variant(self, request: ScoringRequest) -> Variant:
        names = self.endpoint_names()
        name = request.model or (names[0] if names else None)
        if self._pinned is None or name is None or request.version is None:
            raise NotFoundError("this pipeline serves no pinned versions", field="version")
        return Variant(f"v{request.version}", self._pinned(name, request.version))

    # -- scoring ------------------------------------------------------------------------------

    async def score(self, request: ScoringRequest) -> ScoredBatch:
        """Score a request on the event loop; shadows follow without delaying the answer."""
        started = time.perf_counter()
        route = self.route(request)
        try:
            batch = await self._score_async(route.primary, "primary", request, started)
        except Exception as exc:
            if route.fallback is None:
                raise
            self._failed(route.primary, "primary", request, started, exc)
            batch = await self._score_async(route.fallback, "primary", request, started)
        waits: list[tuple[Awaitable[None], bool]] = []
        self._notify(batch, waits)
        for wait, critical in waits:  # the tick's records appended before the answer leaves
            if critical:
                await wait
                continue
            try:
                await wait
            except Exception:
                log.exception("observer failed on request %s", request.request_id)
        if route.shadows:
            (self.shadow_process or self.shadows).put(route.shadows, request, batch)
        return batch

    def score_sync(self, request: ScoringRequest, *, rows: RowBuilder | None = None) -> ScoredBatch:
        """Score a request in the calling thread (jobs, stream processors); shadows inline.

        `rows`, when given, builds the primary's feature rows for the version that answers
        (asked once that version is fixed, so an alias moving meanwhile cannot pair rows
        with another signature); None from it, or shadows of other features, use the
        assembler as usual."""
        started = time.perf_counter()
        route = self.route(request)
        try:
            batch = self._score_sync(route.primary, "primary", request, started, rows)
        except Exception as exc:
            if route.fallback is None:
                raise
            self._failed(route.primary, "primary", request, started, exc)
            batch = self._score_sync(route.fallback, "primary", request, started, rows)
        self._notify(batch)
        for variant in route.shadows:
            try:
                self._score_shadow(variant, request, batch)
            except Exception:
                log.exception("shadow %s failed (request %s)", variant.name, request.request_id)
        return batch

    async def drain(self) -> None:
        """Wait for the shadows still queued or being scored (tests, shutdown)."""
        if self.shadow_process is not None:
            await asyncio.to_thread(self.shadow_process.join)
        await asyncio.to_thread(self.shadows.join)

    def _score_shadows_later(self, items: list[Item]) -> None:
        """Shadows the shadow process cannot score, to the thread (bounded the same way)."""
        for variant, request, primary in items:
            self.shadows.put((variant,), request, primary)

    def _twins(self) -> dict[int, TwinnedObserver]:
        """The observers with a twin in the shadow process now (the log's is the process)."""
        return {t: o for t, o in self._twinned.items() if o is not self._logged_apart}

    def _scored_apart(
        self,
        variant: Variant,
        model: LoadedModel,
        items: list[Item],
        scores: np.ndarray,
        ok: np.ndarray,
        latency_s: float,
        model_s: float,
        error: str | None,
        summaries: dict[int, Any],
    ) -> None:
        """Shadows the shadow process scored (and logged), to every other observer: its
        twin's summary to an observer that has one, each shadow's batch to the others."""
        if model_s > 0:
            self.metrics.child(self.metrics.inference_latency, model.name).observe(model_s)
        summarized = {id(o): (o, summaries[t]) for t, o in self._twinned.items() if t in summaries}
        told = [o for o, _, _ in self._observers if o is not self._logged_apart]
        for observer in told:
            twinned = summarized.get(id(observer))
            if twinned is None:
                continue
            try:
                twinned[0].observe_summary(variant.name, model, twinned[1])
            except Exception:
                log.exception("observer %r failed on a summary of shadows", observer)
        each = [o for o in told if id(o) not in summarized]
        if not each and bool(ok.all()):  # every observer summed up, no failure to report
            return
        end = 0
        for (_, request, primary), scored in zip(items, ok.tolist(), strict=True):
            if primary is None:  # never sent: the process takes the primary's rows
                continue
            start, end = end, end + len(primary.values)
            if not scored:
                failure = RuntimeError(error or "the shadow process did not score it")
                self._failed(variant, "shadow", request, time.perf_counter() - latency_s, failure)
                continue
            if not each:
                continue
            part = scores[start:end]
            batch = ScoredBatch(
                request, variant.name, "shadow", model, primary.values, part,
                decide(part.tolist(), model.threshold), np.zeros(len(part), dtype=bool),
                primary.statuses, primary.degraded, latency_s,
            )  # fmt: skip
            for observer in each:
                try:
                    observer.observe(batch)
                except Exception:
                    log.exception("observer %r failed on shadow %s", observer, request.request_id)

    def _score_shadow(
        self, variant: Variant, request: ScoringRequest, primary: ScoredBatch | None = None
    ) -> None:
        started = time.perf_counter()
        try:
            model = variant.endpoint.current()
            events: list[int | None] | None = None
            if primary is not None and primary.model.feature_names == model.feature_names:
                values, statuses, degraded = primary.values, primary.statuses, primary.degraded
            else:
                values, statuses, degraded, events = self._rows_sync(request, model)
            scores, cached = predict_cached_sync(
                self._shadow_cache(events), self.metrics, values, model, self._fresh(events)
            )
            batch = self._batch(
                request, variant, "shadow", model, values, scores, cached, statuses, degraded,
                started,
            )  # fmt: skip
        except Exception as exc:
            self._failed(variant, "shadow", request, started, exc)
            raise
        self._notify(batch)

    def _score_shadows(self, items: list[Item]) -> None:
        """Score queued shadows: one model call per variant for those reusing their primary's
        rows (the common case), one by one otherwise or if the joint call fails."""
        groups: dict[str, list[Item]] = {}
        for item in items:
            groups.setdefault(item[0].name, []).append(item)
        for group in groups.values():
            variant = group[0][0]
            try:
                model = variant.endpoint.current()
            except Exception as exc:  # noqa: BLE001 - each shadow's failure is reported
                for _, request, _ in group:
                    self._failed(variant, "shadow", request, time.perf_counter(), exc)
                continue
            joint: list[Item] = []
            alone: list[Item] = []
            for item in group:
                same = item[2] is not None and item[2].model.feature_names == model.feature_names
                (joint if same else alone).append(item)
            if len(joint) < 2 or not self._joint(variant, model, joint):
                alone += joint
            for _, request, primary in alone:
                try:
                    self._score_shadow(variant, request, primary)
                except Exception:  # noqa: BLE001 - reported by _score_shadow
                    continue

    def _joint(self, variant: Variant, model: LoadedModel, group: list[Item]) -> bool:
        """Score `group` (primaries' rows, same features) in one call; False if it failed."""
        started = time.perf_counter()
        primaries = [p for _, _, p in group if p is not None]
        values = np.concatenate([p.values for p in primaries], axis=0)
        try:
            cache = self._shadow_cache(None)
            scores, cached = predict_cached_sync(cache, self.metrics, values, model)
            batches, start = [], 0
            for (_, request, _), p in zip(group, primaries, strict=True):
                end = start + len(p.values)
                batches.append(self._batch(
                    request, variant, "shadow", model, p.values, scores[start:end],
                    cached[start:end], p.statuses, p.degraded, started,
                ))  # fmt: skip
                start = end
        except Exception:  # noqa: BLE001 - scored again one by one, each failure reported
            return False
        for batch in batches:
            self._notify(batch)
        return True

    def _failed(
        self,
        variant: Variant,
        role: Role,
        request: ScoringRequest,
        started: float,
        error: Exception,
    ) -> None:
        if variant.name not in self._failed_variants:  # once per variant: a canary may fail a lot
            self._failed_variants.add(variant.name)
            log.warning(
                "%s %s failed on request %s: %r (further failures are counted, not logged)",
                role, variant.name, request.request_id, error,
            )  # fmt: skip
        latency = time.perf_counter() - started
        for observer in self._failure_observers:
            try:
                observer.failed(request, variant.name, role, latency)
            except Exception:
                log.exception("failure observer %r failed", observer)

    async def _score_async(
        self, variant: Variant, role: Role, request: ScoringRequest, started: float
    ) -> ScoredBatch:
        endpoint = variant.endpoint
        model = endpoint.current()
        if request.values is None:  # raw transactions (the common case: no extra await)
            values, statuses, degraded, events = await self.assembler.build_async(
                request.transactions, model.feature_names
            )
        else:
            values, statuses, degraded, events = self._given_rows(request.values, model)
        prediction, cached = await predict_cached(
            endpoint, self.cache, self.metrics, values, model, self._fresh(events)
        )
        if prediction.model.feature_names != model.feature_names:  # new version, new features
            values, statuses, degraded, _ = await self._rows_async(request, prediction.model)
            prediction = await endpoint.predict(values)
            cached = np.zeros(len(values), dtype=bool)
        return self._batch(
            request, variant, role, prediction.model, values, prediction.scores, cached,
            statuses, degraded, started,
        )  # fmt: skip

    def _score_sync(
        self,
        variant: Variant,
        role: Role,
        request: ScoringRequest,
        started: float,
        rows: RowBuilder | None = None,
    ) -> ScoredBatch:
        model = variant.endpoint.current()  # one version for the whole call
        given = None if rows is None else rows(tuple(model.feature_names))
        if given is not None:
            values, statuses, degraded, events = self._given_rows(given, model)
        else:
            values, statuses, degraded, events = self._rows_sync(request, model)
        scores, cached = predict_cached_sync(
            self.cache, self.metrics, values, model, self._fresh(events)
        )
        return self._batch(
            request, variant, role, model, values, scores, cached, statuses, degraded, started
        )

    async def _rows_async(self, request: ScoringRequest, model: LoadedModel) -> Built:
        if request.values is not None:
            return self._given_rows(request.values, model)
        return await self.assembler.build_async(request.transactions, model.feature_names)

    def _rows_sync(self, request: ScoringRequest, model: LoadedModel) -> Built:
        if request.values is not None:
            return self._given_rows(request.values, model)
        return self.assembler.build(request.transactions, model.feature_names)

    def _shadow_cache(self, events: list[int | None] | None) -> PredictionCache | None:
        """The cache for a shadow's scores: none under a freshness bound when the rows' event
        times are unknown (a shadow reusing its primary's rows), so nothing stale is served."""
        return None if self.freshness_us is not None and events is None else self.cache

    def _fresh(self, events: list[int | None] | None) -> Freshness | None:
        """The freshness bound of one lookup: None when off, or when the rows' feature event
        times are unknown (given rows, a store down): their values are the whole key."""
        if self.freshness_us is None or events is None or None in events:
            return None
        return Freshness([e for e in events if e is not None], self.freshness_us)

    @staticmethod
    def _given_rows(values: np.ndarray, model: LoadedModel) -> Built:
        return check_matrix(values, len(model.feature_names)), [], False, None

    @staticmethod
    def _batch(
        request: ScoringRequest,
        variant: Variant,
        role: Role,
        model: LoadedModel,
        values: np.ndarray,
        scores: np.ndarray,
        cached: np.ndarray,
        statuses: list[dict[str, str]],
        degraded: bool,
        started: float,
    ) -> ScoredBatch:
        decisions = decide(scores.tolist(), model.threshold)
        return ScoredBatch(
            request, variant.name, role, model, values, scores, decisions, cached, statuses,
            degraded, time.perf_counter() - started,
        )  # fmt: skip

    def _notify(
        self, batch: ScoredBatch, waits: list[tuple[Awaitable[None], bool]] | None = None
    ) -> None:
        """Tell every observer; those with `observe_soon` defer to the loop's tick when
        `waits` takes what the caller (on the event loop) must await."""
        for observer, critical, soon in self._observers:
            if soon is not None and waits is not None:
                waits.append((soon(batch), critical))
                continue
            if critical:
                observer.observe(batch)
                continue
            try:
                observer.observe(batch)
            except Exception:
                log.exception(
                    "observer %r failed on request %s", observer, batch.request.request_id
                )


def default_variant(endpoint: Endpoint, alias: str | None, version: int | None) -> Variant:
    """The default variant of an endpoint: named after its alias, or `v{version}` if pinned."""
    if alias:
        return Variant(alias, endpoint)
    return Variant(f"v{version}" if version is not None else endpoint.name, endpoint)


__all__ = [
    "PinnedEndpoints", "RowBuilder", "ScoringPipeline", "VersionEndpoint", "default_variant",
]  # fmt: skip
