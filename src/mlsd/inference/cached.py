"""Scoring through the prediction cache, shared by `POST /v1/score` and V2 infer.

Rows are looked up by the model version's key and the hash of their features;
only the misses go to the endpoint, and their fresh scores are stored. Hits and
misses are counted per model name (`mlsd_cache_hits_total`, `..._misses_total`).
If the endpoint answers with another version than the one looked up (the alias
moved meanwhile), every row is scored anew by the endpoint and nothing is
stored, so a score is never filed under a version that did not produce it.
"""

from __future__ import annotations

import numpy as np

from mlsd.inference.cache import PredictionCache, hash_rows
from mlsd.inference.endpoint import Endpoint, Prediction
from mlsd.inference.host import LoadedModel
from mlsd.inference.metrics import ServingMetrics


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
    cached = np.zeros(n, dtype=bool)
    if cache is None:
        return await endpoint.predict(values), cached
    hashes = hash_rows(values)
    got = cache.get_many(model.key, hashes)
    miss = [i for i, score in enumerate(got) if score is None]
    hits = n - len(miss)
    if hits:
        metrics.child(metrics.cache_hits, model.name).inc(hits)
    if miss:
        metrics.child(metrics.cache_misses, model.name).inc(len(miss))
    if not miss:
        scores = np.asarray(got, dtype=np.float64)
        return Prediction(scores, model), ~cached
    fresh = await endpoint.predict(values[miss] if hits else values)
    if fresh.model.key != model.key:  # the alias moved meanwhile: score all rows anew
        return await endpoint.predict(values), cached
    cache.put_many(model.key, [hashes[i] for i in miss], fresh.scores.tolist())
    if not hits:
        return fresh, cached
    scores = np.array([np.nan if s is None else s for s in got], dtype=np.float64)
    scores[miss] = fresh.scores
    cached[:] = True
    cached[miss] = False
    return Prediction(scores, model, fresh.variant), cached
