"""One suite for every prediction cache backend: in-process and Redis, opened from settings."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from mlsd.inference.cache import PredictionCache, hash_rows, make_cache, model_key
from mlsd.settings import Settings

Factory = Callable[..., PredictionCache]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(backend: str, request: pytest.FixtureRequest) -> Iterator[Factory]:
    made: list[PredictionCache] = []

    def factory(ttl_seconds: float = 60.0) -> PredictionCache:
        settings = Settings(cache_ttl_seconds=ttl_seconds, cache_max_entries=1000)
        if backend == "redis":
            settings = settings.model_copy(
                update={
                    "cache": request.getfixturevalue("redis_url"),
                    "redis_prefix": request.getfixturevalue("redis_prefix"),
                }
            )
        cache = make_cache(settings)
        made.append(cache)
        return cache

    yield factory
    for cache in made:
        cache.close()


def test_is_a_prediction_cache(make: Factory) -> None:
    assert isinstance(make(), PredictionCache)


def test_put_then_get_by_model_version(make: Factory) -> None:
    cache = make()
    hashes = hash_rows(np.arange(30, dtype=np.float32).reshape(2, 15))
    cache.put_many(model_key("fraud", 1), hashes, [0.25, 0.75])
    assert cache.get_many(model_key("fraud", 1), hashes) == [0.25, 0.75]
    assert cache.get_many(model_key("fraud", 2), hashes) == [None, None]
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (2, 2)
    assert stats.size == 2
    assert stats.hit_rate == 0.5


def test_scores_round_trip_exactly(make: Factory) -> None:
    cache = make()
    scores = [0.1 + 1e-12, 1 / 3, 0.0, 1.0]
    hashes = [f"h{i}" for i in range(4)]
    cache.put_many("m/1", hashes, scores)
    assert cache.get_many("m/1", hashes) == scores


def test_empty_calls(make: Factory) -> None:
    cache = make()
    assert cache.get_many("m/1", []) == []
    cache.put_many("m/1", [], [])
    assert cache.stats().size == 0


def test_mismatched_lengths_are_refused(make: Factory) -> None:
    with pytest.raises(ValueError, match="2 hashes but 1 scores"):
        make().put_many("m/1", ["a", "b"], [0.5])


def test_clear_model_forgets_every_version_of_that_model_only(make: Factory) -> None:
    cache = make()
    cache.put_many("fraud/1", ["a"], [0.1])
    cache.put_many("fraud/2", ["a"], [0.2])
    cache.put_many("fraud-v2/1", ["a"], [0.3])
    cache.put_many("other/1", ["a"], [0.4])
    cache.clear_model("fraud")
    assert cache.get_many("fraud/1", ["a"]) == [None]
    assert cache.get_many("fraud/2", ["a"]) == [None]
    assert cache.get_many("fraud-v2/1", ["a"]) == [0.3]
    assert cache.get_many("other/1", ["a"]) == [0.4]


def test_glob_characters_in_names_clear_nothing_else(make: Factory) -> None:
    cache = make()
    cache.put_many("f*/1", ["a"], [0.1])
    cache.put_many("fx/1", ["a"], [0.2])
    cache.clear_model("f*")
    assert cache.get_many("f*/1", ["a"]) == [None]
    assert cache.get_many("fx/1", ["a"]) == [0.2]


def test_entries_expire(make: Factory) -> None:
    cache = make(ttl_seconds=0.2)
    cache.put_many("m/1", ["a"], [0.5])
    assert cache.get_many("m/1", ["a"]) == [0.5]
    time.sleep(0.35)
    assert cache.get_many("m/1", ["a"]) == [None]


def test_make_cache_picks_by_url(backend: str, request: pytest.FixtureRequest) -> None:
    url = "" if backend == "memory" else request.getfixturevalue("redis_url")
    cache = make_cache(Settings(cache=url, cache_ttl_seconds=5))
    try:
        assert type(cache).__name__ == ("MemoryCache" if backend == "memory" else "RedisCache")
    finally:
        cache.close()


def test_the_freshness_bound_refuses_entries_filed_from_older_features(make: Factory) -> None:
    cache = make()
    key = model_key("fraud", 1)
    cache.put_many(key, ["a", "b"], [0.25, 0.75], events=[1_000, 2_000])
    cache.put_many(key, ["c"], [0.5])  # filed without an event time
    # a bound at or before the filed event serves; after it refuses; no event: refused
    assert cache.get_many(key, ["a", "b"], min_events=[1_000, 1_500]) == [0.25, 0.75]
    assert cache.get_many(key, ["a", "b", "c"], min_events=[1_001, 2_000, 0]) == [None, 0.75, None]
    assert cache.get_many(key, ["a", "c"]) == [0.25, 0.5]  # bound off: the values are the key
    stats = cache.stats()
    assert stats.stale == 2
    assert (stats.hits, stats.misses) == (5, 2)
    cache.put_many(key, ["a"], [0.125], events=[5_000])  # rescored from newer features
    assert cache.get_many(key, ["a"], min_events=[4_000]) == [0.125]
    with pytest.raises(ValueError, match="events"):
        cache.put_many(key, ["a"], [0.1], events=[1, 2])
    with pytest.raises(ValueError, match="min_events"):
        cache.get_many(key, ["a", "b"], min_events=[1])
