"""The Redis prediction cache keeps its own bound: LRU eviction, TTL, shared by processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from mlsd.inference.cache import make_cache
from mlsd.inference.cache.redis import RedisCache
from mlsd.settings import Settings

Factory = Callable[..., RedisCache]


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make(redis_url: str, redis_prefix: str) -> Iterator[Factory]:
    made: list[RedisCache] = []

    def factory(max_entries: int = 5, ttl_seconds: float = 60.0) -> RedisCache:
        settings = Settings(
            cache=f"{redis_url}?timeout_ms=2000",
            cache_ttl_seconds=ttl_seconds,
            cache_max_entries=max_entries,
            redis_prefix=redis_prefix,
        )
        cache = make_cache(settings)
        assert isinstance(cache, RedisCache)
        made.append(cache)
        return cache

    yield factory
    for cache in made:
        cache.close()


def held(raw: redis.Redis, prefix: str) -> tuple[set[str], set[str]]:
    """The cache keys on Redis and the LRU set's members, without the prefix."""
    lru = f"{prefix}cache:lru"
    keys = {k.decode()[len(prefix) :] for k in raw.scan_iter(match=f"{prefix}cache:*")}
    keys.discard(lru[len(prefix) :])
    members = {m.decode()[len(prefix) :] for m in raw.zrange(lru, 0, -1)}
    return keys, members


def names(*hashes: str, model: str = "m/1") -> set[str]:
    return {f"cache:{model}:{h}" for h in hashes}


@pytest.mark.redis
@pytest.mark.parametrize("one_call", [False, True])
def test_eight_puts_into_five_keep_the_five_newest(
    make: Factory, raw: redis.Redis, redis_prefix: str, one_call: bool
) -> None:
    cache = make(max_entries=5)
    hashes = [f"h{i}" for i in range(8)]
    if one_call:
        cache.put_many("m/1", hashes, [i / 10 for i in range(8)])
    else:
        for i, digest in enumerate(hashes):
            cache.put_many("m/1", [digest], [i / 10])
    assert cache.get_many("m/1", hashes) == [None, None, None, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert held(raw, redis_prefix) == (names(*hashes[3:]), names(*hashes[3:]))
    assert cache.stats().size == 5


@pytest.mark.redis
def test_a_read_makes_an_old_entry_recent(make: Factory) -> None:
    cache = make(max_entries=3)
    for digest in "abc":
        cache.put_many("m/1", [digest], [0.5])
    assert cache.get_many("m/1", ["a"]) == [0.5]  # a is now the most recent, b the oldest
    cache.put_many("m/1", ["d"], [0.5])
    assert cache.get_many("m/1", ["a", "b", "c", "d"]) == [0.5, None, 0.5, 0.5]
    assert cache.get_many("m/1", ["c"]) == [0.5]  # order now a, d, c: a goes next
    cache.put_many("m/1", ["e"], [0.5])
    assert cache.get_many("m/1", ["a", "c", "d", "e"]) == [None, 0.5, 0.5, 0.5]


@pytest.mark.redis
def test_a_miss_does_not_add_a_member(make: Factory, raw: redis.Redis, redis_prefix: str) -> None:
    cache = make()
    cache.put_many("m/1", ["a"], [0.1])
    assert cache.get_many("m/1", ["a", "x", "y"]) == [0.1, None, None]
    assert held(raw, redis_prefix) == (names("a"), names("a"))


@pytest.mark.redis
def test_rewriting_a_key_holds_one_entry(make: Factory) -> None:
    cache = make(max_entries=2)
    cache.put_many("m/1", ["a", "b"], [0.1, 0.2])
    cache.put_many("m/1", ["a"], [0.3])  # rewritten: a is newest, b not evicted
    assert cache.get_many("m/1", ["a", "b"]) == [0.3, 0.2]
    assert cache.stats().size == 2


@pytest.mark.redis
def test_ttl_expiry_and_expired_entries_stop_counting(
    make: Factory, raw: redis.Redis, redis_prefix: str
) -> None:
    cache = make(max_entries=3, ttl_seconds=0.2)
    cache.put_many("m/1", ["a", "b", "c"], [0.1, 0.2, 0.3])
    assert cache.get_many("m/1", ["a"]) == [0.1]
    time.sleep(0.35)
    assert cache.get_many("m/1", ["a", "b", "c"]) == [None, None, None]
    assert cache.stats().size == 0  # nothing used within the TTL
    cache.put_many("m/1", ["d"], [0.4])
    # the next write drops members unused for a TTL: they no longer hold room
    assert held(raw, redis_prefix) == (names("d"), names("d"))
    cache.put_many("m/1", ["e", "f"], [0.5, 0.6])
    assert cache.get_many("m/1", ["d", "e", "f"]) == [0.4, 0.5, 0.6]


@pytest.mark.redis
def test_clear_model_removes_keys_and_members(
    make: Factory, raw: redis.Redis, redis_prefix: str
) -> None:
    cache = make(max_entries=10)
    cache.put_many("fraud/1", ["a", "b"], [0.1, 0.2])
    cache.put_many("fraud/2", ["a"], [0.3])
    cache.put_many("fraud-v2/1", ["a"], [0.4])
    cache.put_many("other/1", ["a"], [0.5])
    raw.set(f"{redis_prefix}cache:fraud/0:z", "0.9")  # a key without member (older writer)
    cache.clear_model("fraud")
    keep = names("a", model="fraud-v2/1") | names("a", model="other/1")
    assert held(raw, redis_prefix) == (keep, keep)
    assert cache.stats().size == 2


@pytest.mark.redis
def test_two_caches_on_one_prefix_share_one_bound(
    make: Factory, raw: redis.Redis, redis_prefix: str
) -> None:
    first, second = make(max_entries=4), make(max_entries=4)
    first.put_many("m/1", ["a", "b", "c"], [0.1, 0.2, 0.3])
    second.put_many("m/1", ["d", "e"], [0.4, 0.5])
    assert second.get_many("m/1", ["a", "b"]) == [None, 0.2]
    assert first.get_many("m/1", ["d", "e"]) == [0.4, 0.5]
    assert first.stats().size == second.stats().size == 4


@pytest.mark.redis
def test_concurrent_writers_trim_to_the_bound_exactly(
    make: Factory, raw: redis.Redis, redis_prefix: str
) -> None:
    caches = [make(max_entries=50) for _ in range(4)]
    start = threading.Barrier(len(caches))

    def write(index: int) -> None:
        start.wait()
        for i in range(100):
            caches[index].put_many(f"m{index}/1", [f"{i}a", f"{i}b"], [0.1, 0.2])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(caches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys, members = held(raw, redis_prefix)
    assert len(keys) == 50
    assert keys == members  # no key left without a member, no member without a key
    assert all(cache.stats().errors == 0 for cache in caches)


@pytest.mark.redis
def test_calls_larger_than_a_script_chunk(
    make: Factory, raw: redis.Redis, redis_prefix: str
) -> None:
    cache = make(max_entries=1000)
    hashes = [f"h{i}" for i in range(1200)]
    cache.put_many("m/1", hashes, [i / 1200 for i in range(1200)])
    got = cache.get_many("m/1", hashes)
    assert got[:200] == [None] * 200
    assert got[200:] == [i / 1200 for i in range(200, 1200)]
    keys, members = held(raw, redis_prefix)
    assert len(keys) == len(members) == 1000


@pytest.mark.redis
def test_make_cache_passes_the_size_bound(redis_url: str, redis_prefix: str) -> None:
    settings = Settings(cache=redis_url, cache_max_entries=7, redis_prefix=redis_prefix)
    cache = make_cache(settings)
    try:
        assert isinstance(cache, RedisCache)
        assert cache.max_entries == 7
        assert cache.lru_key == f"{redis_prefix}cache:lru"
    finally:
        cache.close()


def test_bad_size_is_refused() -> None:
    with pytest.raises(ValueError, match="max_entries must be >= 1"):
        RedisCache("redis://127.0.0.1:1/0", 60, max_entries=0)


def test_dead_redis_counts_errors_and_raises_none() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0", 60, max_entries=5, socket_timeout_s=0.05)
    try:
        cache.put_many("m/1", ["a", "b"], [0.1, 0.2])
        assert cache.get_many("m/1", ["a"]) == [None]
        cache.clear_model("m")
        stats = cache.stats()
        assert (stats.hits, stats.misses, stats.size, stats.errors) == (0, 1, 0, 4)
    finally:
        cache.close()
