"""Scoring through the prediction cache, for every variant of the pipeline.

Rows are looked up by the model version's key and the hash of their features; only the
misses go to the model, and their fresh scores are stored. Hits and misses are counted per
model name (`mlsd_cache_hits_total`, `..._misses_total`). If the endpoint answers with
another version than the one looked up (the alias moved meanwhile), every row is scored anew
and nothing is stored, so a score is never filed under a version that did not produce it.
A cache over the network (Redis) is called off the event loop on the async path: it has
`get_many_async` and `put_many_background` (`cache/redis.py`).
"""

from __future__ import annotations

import numpy as np

from mlsd.inference.cache import PredictionCache, hash_rows
from mlsd.inference.endpoint import Endpoint, Prediction, timed_predict
from mlsd.inference.metrics import ServingMetrics
from mlsd.inference.spec import LoadedModel

#: (row hashes, cached score or None per row, indexes of the misses)
Lookup = tuple[list[str], list[float | None], list[int]]


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
    cache: PredictionCache, metrics: ServingMetrics, values: np.ndarray, model: LoadedModel
) -> Lookup:
    hashes = hash_rows(values)
    return _counted(metrics, model, hashes, cache.get_many(model.key, hashes))


async def _lookup_async(
    cache: PredictionCache, metrics: ServingMetrics, values: np.ndarray, model: LoadedModel
) -> Lookup:
    get_async = getattr(cache, "get_many_async", None)
    if get_async is None:  # in process: microseconds, on the loop
        return _lookup(cache, metrics, values, model)
    hashes = hash_rows(values)
    return _counted(metrics, model, hashes, await get_async(model.key, hashes))


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
) -> tuple[Prediction, np.ndarray]:
    """Scores of `values` (n, k) built for `model`, and which rows came from the cache.

    `model` is the version the caller built the rows for (its `key` is the cache key);
    without a cache every row is scored by the endpoint and none is flagged cached.
    """
    n = len(values)
    if cache is None:
        return await endpoint.predict(values), _flags(n, False)
    hashes, got, miss = await _lookup_async(cache, metrics, values, model)
    if not miss:
        return Prediction(np.asarray(got, dtype=np.float64), model), _flags(n, True)
    hits = n - len(miss)
    fresh = await endpoint.predict(values[miss] if hits else values)
    if fresh.model.key != model.key:  # the alias moved meanwhile: score all rows anew
        return await endpoint.predict(values), _flags(n, False)
    put = getattr(cache, "put_many_background", cache.put_many)
    put(model.key, [hashes[i] for i in miss], fresh.scores.tolist())
    if not hits:
        return fresh, _flags(n, False)
    scores, cached = _merge(got, miss, fresh.scores)
    return Prediction(scores, model, fresh.variant), cached


def predict_cached_sync(
    cache: PredictionCache | None,
    metrics: ServingMetrics,
    values: np.ndarray,
    model: LoadedModel,
) -> tuple[np.ndarray, np.ndarray]:
    """`predict_cached` in the calling thread with one fixed version (jobs, streams)."""
    n = len(values)
    if cache is None:
        return timed_predict(model, values, metrics), _flags(n, False)
    hashes, got, miss = _lookup(cache, metrics, values, model)
    if not miss:
        return np.asarray(got, dtype=np.float64), _flags(n, True)
    fresh = timed_predict(model, values[miss] if len(miss) < n else values, metrics)
    cache.put_many(model.key, [hashes[i] for i in miss], fresh.tolist())
    if len(miss) == n:
        return fresh, _flags(n, False)
    return _merge(got, miss, fresh)
