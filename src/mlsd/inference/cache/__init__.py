"""Prediction cache: scores by model version and input hash, TTL + LRU; memory or Redis."""

from __future__ import annotations

from mlsd.errors import ConfigError
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
    url = settings.cache
    if not url:
        return MemoryCache(settings.cache_max_entries, settings.cache_ttl_seconds)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from mlsd.inference.cache.redis import RedisCache

        return RedisCache(
            url,
            settings.cache_ttl_seconds,
            max_entries=settings.cache_max_entries,
            prefix=settings.redis_prefix,
        )
    raise ConfigError(f"unsupported cache URL {url!r}: use '' or redis://", field="cache")
