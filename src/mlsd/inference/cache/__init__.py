"""Prediction cache: scores by model version and input hash, TTL + LRU; memory or Redis."""

from __future__ import annotations

from typing import cast

from mlsd.backends import Opening, open_backend
from mlsd.inference.cache.base import CacheStats, PredictionCache, hash_rows, model_key
from mlsd.inference.cache.memory import MemoryCache
from mlsd.settings import Settings

__all__ = [
    "CacheStats",
    "MemoryCache",
    "PredictionCache",
    "hash_rows",
    "make_cache",
    "model_key",
]


def make_cache(settings: Settings) -> PredictionCache:
    """The cache `settings.cache` names: '' in-process, redis://... on Redis."""
    return cast(PredictionCache, open_backend("cache", settings))


def memory_cache(o: Opening) -> PredictionCache:
    """The embedded cache: in this process, TTL + LRU."""
    return MemoryCache(o.settings.cache_max_entries, o.settings.cache_ttl_seconds)


def redis_cache(o: Opening) -> PredictionCache:
    """The cache on Redis, under `{prefix}cache:`; `?timeout_ms=` bounds each call (50 ms)."""
    from mlsd.inference.cache.redis import RedisCache

    return RedisCache(
        o.url.dsn,
        o.settings.cache_ttl_seconds,
        max_entries=o.settings.cache_max_entries,
        prefix=o.key_prefix,
        socket_timeout_s=o.url.timeout(0.05),
    )
