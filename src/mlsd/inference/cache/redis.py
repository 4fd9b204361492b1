"""The prediction cache on Redis: TTL per score key, a global LRU bound kept by Lua scripts.

The cache owns every key under its prefix (`{MLSD_REDIS_PREFIX}cache:` when opened
from settings). Scores live in `{prefix}{model_key}:{hash}` (`SET PX`, so they
expire on their own; a model key holds a `/`). Beside them one sorted set,
`{prefix}lru`, holds every cache key scored by its last use (Redis server time, µs).
The bound is global, like `MemoryCache`'s, so one set serves every model: per-model
sets could not tell which model's entry is the least recently used without reading
them all.

Each call is one round trip running one Lua script, so it is atomic: two server
processes trimming at once run one after the other and never evict twice. No
`maxmemory-policy` is needed (a shared Redis is often `noeviction`); under
`allkeys-lru` Redis may drop the set itself, which only forgets recency.
Needs Redis >= 5 (ZPOPMIN, and TIME inside scripts that write).

A member outlives its key by at most one TTL (a read refreshes recency, not the
TTL); members unused for a TTL are dropped at every write, so expired entries
do not hold room for long. A Redis error never fails a request: lookups miss,
writes are dropped, and the error is counted. Every call goes through a circuit breaker:
after three failed or slow calls in a row (each waits at most `socket_timeout_s`) the cache
is skipped, probed again from 50 ms on (doubling to 0.5 s), so a stalled Redis costs a few
timeouts, not one per request, and the cache is back within a probe interval of Redis.

On the event loop (`get_many_async`, `put_many_background`) the calls run off the loop
(`mlsd.inference.offload`): a lookup waits at most `deadline_s` (10 ms: a miss costs
one model call, far less than waiting on a stalled Redis) and a write is not waited for.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence

import redis

from mlsd.backends import glob_escape
from mlsd.errors import UnavailableError
from mlsd.inference.breaker import CircuitBreaker
from mlsd.inference.cache.base import CacheStats
from mlsd.inference.offload import Offloader

log = logging.getLogger(__name__)

# Lua's unpack() is bounded by the C stack (~8000 values): commands go in chunks.
_NOW_US = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# KEYS[1] the LRU set, KEYS[2..] score keys -> their values (nil where absent); hits touched
_GET = (
    _NOW_US
    + """
local stamp = string.format('%.0f', now)
local values = {}
for first = 2, #KEYS, 500 do
  local last = math.min(first + 499, #KEYS)
  local part = redis.call('MGET', unpack(KEYS, first, last))
  local touch = {}
  for j = 1, #part do
    values[#values + 1] = part[j]
    if part[j] then
      touch[#touch + 1] = stamp
      touch[#touch + 1] = KEYS[first + j - 1]
    end
  end
  if #touch > 0 then redis.call('ZADD', KEYS[1], unpack(touch)) end
end
return values
"""
)

# KEYS[1] the LRU set, KEYS[2..] score keys; ARGV[1] TTL ms, ARGV[2] max entries, ARGV[3..]
# scores. Keys of one call are stamped 1 µs apart, so the first written is evicted first.
_PUT = (
    _NOW_US
    + """
local ttl_ms = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
for first = 2, #KEYS, 500 do
  local last = math.min(first + 499, #KEYS)
  local members = {}
  for i = first, last do
    redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ttl_ms)
    members[#members + 1] = string.format('%.0f', now + i - 2)
    members[#members + 1] = KEYS[i]
  end
  redis.call('ZADD', KEYS[1], unpack(members))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - ttl_ms * 1000))
local over = redis.call('ZCARD', KEYS[1]) - cap
local evicted = 0
while over > 0 do
  local popped = redis.call('ZPOPMIN', KEYS[1], math.min(over, 500))
  local doomed = {}
  for j = 1, #popped, 2 do doomed[#doomed + 1] = popped[j] end
  redis.call('UNLINK', unpack(doomed))
  over = over - #doomed
  evicted = evicted + #doomed
end
return evicted
"""
)

# KEYS[1] the LRU set; ARGV[1] TTL ms -> members used within the last TTL
_SIZE = (
    _NOW_US
    + """
return redis.call('ZCOUNT', KEYS[1], string.format('%.0f', now - tonumber(ARGV[1]) * 1000), '+inf')
"""
)


class RedisCache:
    """At most `max_entries` scores on a Redis shared by every server process, LRU first out.

    Hit and miss counters are per process; the bound and `stats().size` are global.
    """

    def __init__(
        self,
        url: str,
        ttl_seconds: float = 300.0,
        *,
        max_entries: int = 100_000,
        prefix: str = "mlsd:cache:",
        socket_timeout_s: float = 0.05,
        deadline_s: float = 0.01,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be > 0")
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.max_entries = max_entries
        self.prefix = prefix
        self.lru_key = f"{prefix}lru"
        self._client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
        )
        self._get = self._client.register_script(_GET)
        self._put = self._client.register_script(_PUT)
        self._size = self._client.register_script(_SIZE)
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._errors = 0
        self._stale = 0
        #: Skips Redis while it fails or stalls (a stall blocks the event loop per call).
        self.breaker = CircuitBreaker(
            failure_threshold=3,
            reset_timeout_s=0.5,
            call_timeout_s=socket_timeout_s,
            first_probe_s=0.05,
            name="the Redis prediction cache",
            failures=(redis.RedisError,),
        )
        self.offload = Offloader(
            self.breaker, min(deadline_s, socket_timeout_s), name="the Redis prediction cache"
        )

    def _key(self, model_key: str, digest: str) -> str:
        return f"{self.prefix}{model_key}:{digest}"

    def _count(self, hits: int, misses: int, errors: int = 0, *, stale: int = 0) -> None:
        with self._lock:
            self._hits += hits
            self._misses += misses
            self._errors += errors
            self._stale += stale

    def get_many(
        self,
        model_key: str,
        hashes: Sequence[str],
        *,
        min_events: Sequence[int] | None = None,
    ) -> list[float | None]:
        """The cached score of each hash, None where absent, expired, on error or (with
        `min_events`) stored from features older than the bound.

        One script: MGET, and the hits become the most recently used. A value stored with
        its features' event time reads `score;event_us`.
        """
        if not hashes:
            return []
        if min_events is not None and len(min_events) != len(hashes):
            raise ValueError(f"{len(hashes)} hashes but {len(min_events)} min_events")
        keys = [self.lru_key, *(self._key(model_key, d) for d in hashes)]
        try:
            raw = self.breaker.call(self._get, keys=keys)
        except UnavailableError as exc:
            if self.breaker.failure_threshold > self.breaker.stats().consecutive_failures:
                log.warning("prediction cache lookup failed: %s", exc.message)
            self._count(0, len(hashes), 1)
            return [None] * len(hashes)
        return self._found(raw, min_events)

    def _found(
        self, raw: Sequence[bytes | None], min_events: Sequence[int] | None
    ) -> list[float | None]:
        """Decode a lookup's values (`score` or `score;event_us`) and count it."""
        stale = 0
        if min_events is None:
            found = [None if v is None else float(v.partition(b";")[0]) for v in raw]
        else:
            found = []
            for value, bound in zip(raw, min_events, strict=True):
                if value is None:
                    found.append(None)
                    continue
                score, _, event = value.partition(b";")
                if not event or int(event) < bound:
                    stale += 1
                    found.append(None)
                else:
                    found.append(float(score))
        hits = len(found) - found.count(None)
        self._count(hits, len(found) - hits, stale=stale)
        return found

    async def get_many_async(
        self,
        model_key: str,
        hashes: Sequence[str],
        *,
        min_events: Sequence[int] | None = None,
    ) -> list[float | None]:
        """`get_many` for the event loop: off the loop, misses past `deadline_s`."""
        if not hashes:
            return []
        if min_events is not None and len(min_events) != len(hashes):
            raise ValueError(f"{len(hashes)} hashes but {len(min_events)} min_events")
        keys = [self.lru_key, *(self._key(model_key, d) for d in hashes)]
        try:
            raw = await self.offload.call(self._get, keys)
        except UnavailableError:
            self._count(0, len(hashes), 1)
            return [None] * len(hashes)
        return self._found(raw, min_events)

    def put_many_background(
        self,
        model_key: str,
        hashes: Sequence[str],
        scores: Sequence[float],
        *,
        events: Sequence[int] | None = None,
    ) -> None:
        """`put_many` on the offloader's threads, not waited for (dropped if it fails)."""
        write = functools.partial(self.put_many, events=None if events is None else list(events))
        self.offload.submit(write, model_key, list(hashes), list(scores))

    def put_many(
        self,
        model_key: str,
        hashes: Sequence[str],
        scores: Sequence[float],
        *,
        events: Sequence[int] | None = None,
    ) -> None:
        """Store one score per hash (with its features' newest event time, if given) and
        evict beyond `max_entries`, in one script. Dropped (and counted) on a Redis error.
        """
        if len(hashes) != len(scores):
            raise ValueError(f"{len(hashes)} hashes but {len(scores)} scores")
        if events is not None and len(events) != len(hashes):
            raise ValueError(f"{len(hashes)} hashes but {len(events)} events")
        if not hashes:
            return
        keys = [self.lru_key, *(self._key(model_key, d) for d in hashes)]
        args: list[int | str] = [self.ttl_ms, self.max_entries]
        if events is None:
            args.extend(repr(float(s)) for s in scores)
        else:
            args.extend(f"{float(s)!r};{int(e)}" for s, e in zip(scores, events, strict=True))
        try:
            self.breaker.call(self._put, keys=keys, args=args)
        except UnavailableError as exc:
            if self.breaker.failure_threshold > self.breaker.stats().consecutive_failures:
                log.warning("prediction cache write failed: %s", exc.message)
            self._count(0, 0, 1)

    def clear_model(self, model_name: str) -> None:
        """Delete every version's keys and LRU members of `model_name`, in batches.

        Members come from ZSCAN of the LRU set; SCAN also finds keys without a member
        (written before the set existed).
        """
        pattern = f"{glob_escape(self.prefix)}{glob_escape(model_name)}/*"
        client = self._client
        try:
            doomed: set[bytes] = {m for m, _ in client.zscan_iter(self.lru_key, match=pattern)}
            doomed.update(client.scan_iter(match=pattern, count=1000))
            batch = sorted(doomed)
            for start in range(0, len(batch), 1000):
                part = batch[start : start + 1000]
                pipe = client.pipeline(transaction=False)
                pipe.unlink(*part)
                pipe.zrem(self.lru_key, *part)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("prediction cache clear failed (entries expire by TTL): %s", exc)
            self._count(0, 0, 1)

    def stats(self) -> CacheStats:
        """This process's hits and misses; size is the entries used within the last TTL."""
        size = 0
        errors = 0
        try:
            size = int(self._size(keys=[self.lru_key], args=[self.ttl_ms]))
        except redis.RedisError:
            errors = 1
        with self._lock:
            self._errors += errors
            return CacheStats(self._hits, self._misses, size, self._errors, self._stale)

    def close(self) -> None:
        """Close the connection pool (and the offloader's threads)."""
        self.offload.close()
        self._client.close()
