"""In-process cache details (LRU order, fake-clock TTL), hashing, the factory, a dead Redis."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from mlsd.errors import ConfigError
from mlsd.inference.breaker import FakeClock
from mlsd.inference.cache import base, make_cache, memory
from mlsd.inference.cache.base import hash_rows
from mlsd.inference.cache.memory import MemoryCache
from mlsd.settings import Settings


@pytest.mark.parametrize("module", [base, memory])
def test_doctests(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


def test_lru_keeps_recently_read_entries() -> None:
    cache = MemoryCache(max_entries=3, ttl_seconds=60)
    cache.put_many("m/1", ["a", "b", "c"], [1.0, 2.0, 3.0])
    cache.get_many("m/1", ["a"])  # a is now the most recent
    cache.put_many("m/1", ["d"], [4.0])
    assert cache.get_many("m/1", ["a", "b", "c", "d"]) == [1.0, None, 3.0, 4.0]
    assert cache.stats().size == 3


def test_ttl_with_a_fake_clock() -> None:
    clock = FakeClock()
    cache = MemoryCache(10, ttl_seconds=5, clock=clock)
    cache.put_many("m/1", ["a"], [0.5])
    clock.advance(4.9)
    assert cache.get_many("m/1", ["a"]) == [0.5]
    clock.advance(0.1)
    assert cache.get_many("m/1", ["a"]) == [None]
    assert cache.stats().size == 0  # the expired entry was dropped when touched


def test_rewrite_refreshes_ttl() -> None:
    clock = FakeClock()
    cache = MemoryCache(10, ttl_seconds=5, clock=clock)
    cache.put_many("m/1", ["a"], [0.5])
    clock.advance(4)
    cache.put_many("m/1", ["a"], [0.6])
    clock.advance(4)
    assert cache.get_many("m/1", ["a"]) == [0.6]


@pytest.mark.parametrize(("entries", "ttl"), [(0, 1.0), (1, 0.0)])
def test_bad_memory_configuration(entries: int, ttl: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        MemoryCache(entries, ttl)


def test_hash_rows_differs_by_value_and_shape() -> None:
    rows = np.random.default_rng(0).random((100, 15))
    digests = hash_rows(rows)
    assert len(set(digests)) == 100
    assert all(len(d) == 32 for d in digests)
    assert hash_rows(rows[0]) == digests[:1]
    assert hash_rows(rows[:, :14])[0] != digests[0]
    assert hash_rows(rows[::2]) == digests[::2]  # strided views hash like copies


def test_hash_rows_refuses_3d() -> None:
    with pytest.raises(ValueError, match="2-d"):
        hash_rows(np.zeros((2, 2, 2)))


def test_unknown_cache_url_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        make_cache(Settings(cache="memcached://x"))
    assert info.value.field == "cache"


def test_dead_redis_misses_instead_of_failing() -> None:
    from mlsd.inference.cache.redis import RedisCache

    cache = RedisCache("redis://127.0.0.1:1/0", 60, socket_timeout_s=0.05)
    try:
        cache.put_many("m/1", ["a"], [0.5])
        assert cache.get_many("m/1", ["a", "b"]) == [None, None]
        cache.clear_model("m")
        stats = cache.stats()
        assert stats.misses == 2
        assert stats.errors == 4
    finally:
        cache.close()


def test_hash_of_one_row_matches_the_batch_path() -> None:
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(50, 12)).astype(np.float32)
    rows[rng.random(rows.shape) < 0.1] = -0.0
    rows[rng.random(rows.shape) < 0.05] = np.nan
    rows[rng.random(rows.shape) < 0.05] = np.inf
    digests = hash_rows(rows)
    for i in range(len(rows)):
        assert hash_rows(rows[i : i + 1]) == digests[i : i + 1]
        assert hash_rows(rows[i : i + 1].astype(np.float64)) == digests[i : i + 1]
        assert hash_rows(np.asfortranarray(rows[i : i + 1])) == digests[i : i + 1]
    assert hash_rows(rows[:1, ::2]) == hash_rows(rows[:, ::2])[:1]  # strided one-row view
    assert hash_rows(np.array([[-0.0, 1.0]])) == hash_rows(np.array([[0.0, 1.0]]))
