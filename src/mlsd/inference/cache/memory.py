"""The in-process prediction cache: TTL plus LRU in one OrderedDict, thread-safe."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from mlsd.inference.cache.base import CacheStats


class MemoryCache:
    """At most `max_entries` scores, each kept `ttl_seconds`; the least recently used go first.

    >>> cache = MemoryCache(max_entries=2, ttl_seconds=60)
    >>> cache.put_many("fraud/1", ["a", "b"], [0.1, 0.2])
    >>> cache.get_many("fraud/1", ["a", "c"])
    [0.1, None]
    >>> cache.put_many("fraud/1", ["d"], [0.4])  # evicts "b", the least recently used
    >>> cache.get_many("fraud/1", ["b"]), cache.stats().size
    ([None], 2)
    """

    def __init__(
        self,
        max_entries: int = 100_000,
        ttl_seconds: float = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be > 0")
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        # (model_key, hash) -> (score, expires_at); order = recency, oldest first
        self._entries: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()
        #: (model_key, hash) -> newest feature event (µs), for entries stored with one
        self._events: dict[tuple[str, str], int] = {}
        self._hits = 0
        self._misses = 0
        self._stale = 0

    def get_many(
        self,
        model_key: str,
        hashes: Sequence[str],
        *,
        min_events: Sequence[int] | None = None,
    ) -> list[float | None]:
        """The cached score of each hash, None where absent, expired or (with `min_events`)
        stored from features older than the bound."""
        if min_events is not None:
            return self._get_fresh(model_key, hashes, min_events)
        now = self._clock()
        found: list[float | None] = []
        with self._lock:
            entries = self._entries
            for digest in hashes:
                key = (model_key, digest)
                entry = entries.get(key)
                if entry is None:
                    found.append(None)
                elif entry[1] <= now:
                    del entries[key]
                    if self._events:
                        self._events.pop(key, None)
                    found.append(None)
                else:
                    entries.move_to_end(key)
                    found.append(entry[0])
            hits = len(found) - found.count(None)
            self._hits += hits
            self._misses += len(found) - hits
        return found

    def _get_fresh(
        self, model_key: str, hashes: Sequence[str], min_events: Sequence[int]
    ) -> list[float | None]:
        """`get_many` under the freshness bound: a separate loop, so the common one stays lean."""
        if len(min_events) != len(hashes):
            raise ValueError(f"{len(hashes)} hashes but {len(min_events)} min_events")
        now = self._clock()
        found: list[float | None] = []
        stale = 0
        with self._lock:
            entries = self._entries
            for digest, bound in zip(hashes, min_events, strict=True):
                key = (model_key, digest)
                entry = entries.get(key)
                if entry is None:
                    found.append(None)
                elif entry[1] <= now:
                    del entries[key]
                    self._events.pop(key, None)
                    found.append(None)
                elif self._events.get(key, -1) < bound:
                    stale += 1
                    found.append(None)
                else:
                    entries.move_to_end(key)
                    found.append(entry[0])
            hits = len(found) - found.count(None)
            self._hits += hits
            self._misses += len(found) - hits
            self._stale += stale
        return found

    def put_many(
        self,
        model_key: str,
        hashes: Sequence[str],
        scores: Sequence[float],
        *,
        events: Sequence[int] | None = None,
    ) -> None:
        """Store one score per hash (and its features' newest event time, if given), evicting
        the least recently used beyond `max_entries`."""
        if len(hashes) != len(scores):
            raise ValueError(f"{len(hashes)} hashes but {len(scores)} scores")
        if events is not None and len(events) != len(hashes):
            raise ValueError(f"{len(hashes)} hashes but {len(events)} events")
        expires = self._clock() + self.ttl_seconds
        with self._lock:
            entries = self._entries
            marks = self._events
            for digest, score in zip(hashes, scores, strict=True):
                key = (model_key, digest)
                entries[key] = (float(score), expires)
                entries.move_to_end(key)
                if marks:
                    marks.pop(key, None)  # a write without an event forgets the old one
            if events is not None:
                for digest, event in zip(hashes, events, strict=True):
                    marks[(model_key, digest)] = int(event)
            while len(entries) > self.max_entries:
                gone, _ = entries.popitem(last=False)
                if marks:
                    marks.pop(gone, None)

    def clear_model(self, model_name: str) -> None:
        """Forget every version of `model_name`."""
        prefix = model_name + "/"
        with self._lock:
            doomed = [key for key in self._entries if key[0].startswith(prefix)]
            for key in doomed:
                del self._entries[key]
                self._events.pop(key, None)

    def stats(self) -> CacheStats:
        """Hits, misses and entries held (expired ones included until touched)."""
        with self._lock:
            return CacheStats(
                hits=self._hits, misses=self._misses, size=len(self._entries), stale=self._stale
            )

    def close(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self._events.clear()
