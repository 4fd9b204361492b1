"""The prediction cache on Redis: one key per score, `SET PX` for the TTL.

Keys are `{prefix}cache:{model_key}:{hash}`. LRU is Redis's own (run it with
`maxmemory-policy allkeys-lru`); `clear_model` walks the model's keys with SCAN.
A Redis error never fails a request: lookups miss and the error is counted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import redis

from mlsd.serving.cache.base import CacheStats

log = logging.getLogger(__name__)

_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


class RedisCache:
    """Scores on Redis shared by every server process; hit counters are per process."""

    def __init__(
        self,
        url: str,
        ttl_seconds: float = 300.0,
        *,
        prefix: str = "mlsd:",
        socket_timeout_s: float = 0.05,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be > 0")
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.prefix = prefix
        self._client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
        )
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._errors = 0

    def _key(self, model_key: str, digest: str) -> str:
        return f"{self.prefix}cache:{model_key}:{digest}"

    def _count(self, hits: int, misses: int, errors: int = 0) -> None:
        with self._lock:
            self._hits += hits
            self._misses += misses
            self._errors += errors

    def get_many(self, model_key: str, hashes: Sequence[str]) -> list[float | None]:
        """The cached score of each hash (one MGET), None where absent, expired or on error."""
        if not hashes:
            return []
        try:
            raw = self._client.mget([self._key(model_key, d) for d in hashes])
        except redis.RedisError as exc:
            log.warning("prediction cache lookup failed: %s", exc)
            self._count(0, len(hashes), 1)
            return [None] * len(hashes)
        found = [None if value is None else float(value) for value in raw]
        hits = len(found) - found.count(None)
        self._count(hits, len(found) - hits)
        return found

    def put_many(self, model_key: str, hashes: Sequence[str], scores: Sequence[float]) -> None:
        """Store one score per hash in one pipeline; dropped (and counted) on a Redis error."""
        if len(hashes) != len(scores):
            raise ValueError(f"{len(hashes)} hashes but {len(scores)} scores")
        if not hashes:
            return
        pipe = self._client.pipeline(transaction=False)
        for digest, score in zip(hashes, scores, strict=True):
            pipe.set(self._key(model_key, digest), repr(float(score)), px=self.ttl_ms)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("prediction cache write failed: %s", exc)
            self._count(0, 0, 1)

    def clear_model(self, model_name: str) -> None:
        """Delete every version's keys of `model_name` (SCAN + UNLINK in batches)."""
        pattern = f"{self.prefix}cache:{model_name.translate(_GLOB_SPECIAL)}/*"
        try:
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._client.unlink(*batch)
                    batch.clear()
            if batch:
                self._client.unlink(*batch)
        except redis.RedisError as exc:
            log.warning("prediction cache clear failed (entries expire by TTL): %s", exc)
            self._count(0, 0, 1)

    def stats(self) -> CacheStats:
        """This process's hits and misses; size counts the prefix's cache keys with SCAN."""
        size = 0
        errors = 0
        try:
            for _ in self._client.scan_iter(match=f"{self.prefix}cache:*", count=1000):
                size += 1
        except redis.RedisError:
            errors = 1
        with self._lock:
            self._errors += errors
            return CacheStats(self._hits, self._misses, size, self._errors)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
