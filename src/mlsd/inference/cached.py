"""Scoring through the prediction cache, for every variant of the pipeline.

Rows are looked up by the model version's key and the hash of their features; only the
misses go to the model, and their fresh scores are stored. Hits and misses are counted per
model name (`mlsd_cache_hits_total`, `..._misses_total`). If the endpoint answers with
another version than the one looked up (the alias moved meanwhile), every row is scored anew
and nothing is stored, so a score is never filed under a version that did not produce it.

The feature-freshness bound (`Freshness`, off unless a tolerance is set): each score is filed
with the newest event time of the stored features it was computed from, and a lookup whose
rows' features have an event more than the tolerance newer than the entry's is a miss, so a
customer whose card is being drained is not answered from a cache filled before the burst,
even where the new event left the feature values (and so the key) unchanged.

A cache over the network (Redis) is called off the event loop on the async path: it has
`get_many_async` and `put_many_background` (`cache/redis.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlsd.inference.cache import PredictionCache, hash_rows
from mlsd.inference.endpoint import Endpoint, Prediction, timed_predict
from mlsd.inference.metrics import ServingMetrics
from mlsd.inference.spec import LoadedModel

#: (row hashes, cached score or None per row, indexes of the misses)
Lookup = tuple[list[str], list[float | None], list[int]]


@dataclass(frozen=True)
class Freshness:
    """The freshness bound for one lookup: each row's newest feature event (µs) and the
    tolerance (µs). An entry is served only if filed with an event >= newest - tolerance."""

    newest_us: Sequence[int]
    tolerance_us: int

    def min_events(self, rows: Sequence[int] | None = None) -> list[int]:
        """The oldest filed event each row accepts (of `rows` only, if given)."""
        tol = self.tolerance_us
        newest = self.newest_us if rows is None else [self.newest_us[i] for i in rows]
        return [e - tol for e in newest]

    def events(self, rows: Sequence[int]) -> list[int]:
        """The events to file the fresh scores of `rows` under."""
        return [int(self.newest_us[i]) for i in rows]


def _flags(n: int, value: bool) -> np.ndarray:
    """n cached flags all `value`; one shared read-only array for the one-row request."""
    if n == 1:
        return _ONE_CACHED if value else _ONE_FRESH
    return np.full(n, value, dtype=bool)


_ONE_CACHED = np.ones(1, dtype=bool)
_ONE_FRESH = np.zeros(1, dtype=bool)
_ONE_CACHED.flags.writeable = False
_ONE_FRESH.flags.writeable = False


def _lookup(
    cache: PredictionCache,
    metrics: ServingMetrics,
    values: np.ndarray,
    model: LoadedModel,
    fresh: Freshness | None,
) -> Lookup:
    hashes = hash_rows(values)
    if fresh is None:
        got = cache.get_many(model.key, hashes)
    else:
        got = cache.get_many(model.key, hashes, min_events=fresh.min_events())
    return _counted(metrics, model, hashes, got)


async def _lookup_async(
    cache: PredictionCache,
    metrics: ServingMetrics,
    values: np.ndarray,
    model: LoadedModel,
    fresh: Freshness | None,
) -> Lookup:
    get_async = getattr(cache, "get_many_async", None)
    if get_async is None:  # in process: microseconds, on the loop
        return _lookup(cache, metrics, values, model, fresh)
    hashes = hash_rows(values)
    if fresh is None:
        got = await get_async(model.key, hashes)
    else:
        got = await get_async(model.key, hashes, min_events=fresh.min_events())
    return _counted(metrics, model, hashes, got)


def _counted(
    metrics: ServingMetrics, model: LoadedModel, hashes: list[str], got: list[float | None]
) -> Lookup:
    miss = [i for i, score in enumerate(got) if score is None]
    hits = len(got) - len(miss)
    if hits:
        metrics.child(metrics.cache_hits, model.name).inc(hits)
    if miss:
        metrics.child(metrics.cache_misses, model.name).inc(len(miss))
    return hashes, got, miss


def _merge(
    got: list[float | None], miss: list[int], fresh: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cached and fresh scores in row order, and the cached flag of each row."""
    scores = np.array([np.nan if s is None else s for s in got], dtype=np.float64)
    scores[miss] = fresh
    cached = np.ones(len(got), dtype=bool)
    cached[miss] = False
    return scores, cached


async def predict_cached(
    endpoint: Endpoint,
    cache: PredictionCache | None,
    metrics: ServingMetrics,
    values: np.ndarray,
    model: LoadedModel,
    fresh: Freshness | None = None,
) -> tuple[Prediction, np.ndarray]:
    """Scores of `values` (n, k) built for `model`, and which rows came from the cache.

    `model` is the version the caller built the rows for (its `key` is the cache key);
    without a cache every row is scored by the endpoint and none is flagged cached.
    `fresh` applies the freshness bound (None: off, the hot path as before).
    """
    n = len(values)
    if cache is None:
        return await endpoint.predict(values), _flags(n, False)
    hashes, got, miss = await _lookup_async(cache, metrics, values, model, fresh)
    if not miss:
        return Prediction(np.asarray(got, dtype=np.float64), model), _flags(n, True)
    hits = n - len(miss)
    scored = await endpoint.predict(values[miss] if hits else values)
    if scored.model.key != model.key:  # the alias moved meanwhile: score all rows anew
        return await endpoint.predict(values), _flags(n, False)
    _store(cache, model, hashes, miss, scored.scores.tolist(), fresh, background=True)
    if not hits:
        return scored, _flags(n, False)
    scores, cached = _merge(got, miss, scored.scores)
    return Prediction(scores, model, scored.variant), cached


def _store(
    cache: PredictionCache,
    model: LoadedModel,
    hashes: list[str],
    miss: list[int],
    scores: list[float],
    fresh: Freshness | None,
    *,
    background: bool = False,
) -> None:
    """File the fresh scores; `background`: on a network cache's own threads, unawaited."""
    digests = [hashes[i] for i in miss]
    put = getattr(cache, "put_many_background", cache.put_many) if background else cache.put_many
    if fresh is None:
        put(model.key, digests, scores)
    else:
        put(model.key, digests, scores, events=fresh.events(miss))


def predict_cached_sync(
    cache: PredictionCache | None,
    metrics: ServingMetrics,
    values: np.ndarray,
    model: LoadedModel,
    fresh: Freshness | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`predict_cached` in the calling thread with one fixed version (jobs, streams)."""
    n = len(values)
    if cache is None:
        return timed_predict(model, values, metrics), _flags(n, False)
    hashes, got, miss = _lookup(cache, metrics, values, model, fresh)
    if not miss:
        return np.asarray(got, dtype=np.float64), _flags(n, True)
    scored = timed_predict(model, values[miss] if len(miss) < n else values, metrics)
    _store(cache, model, hashes, miss, scored.tolist(), fresh)
    if len(miss) == n:
        return scored, _flags(n, False)
    return _merge(got, miss, scored)
