"""A stalled Redis costs the scoring path a few timeouts, not one per request.

The Redis prediction cache made two blocking calls (50 ms timeout each) per request on the
event loop: three 2 s stalls gave every request arriving during them p50 1.07 s. Now its
circuit breaker skips Redis after three failed calls and probes it back from 50 ms on.
Stalled for real: `CLIENT PAUSE` on the server the test uses.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from mlsd.inference.cache import make_cache
from mlsd.inference.cache.redis import RedisCache
from mlsd.settings import Settings

pytestmark = pytest.mark.redis


@pytest.fixture
def cache(redis_url: str, redis_prefix: str) -> Iterator[RedisCache]:
    """The Redis cache as users get it (settings), with the serving path's 50 ms timeout."""
    made = make_cache(Settings(cache=f"{redis_url}?timeout_ms=50", redis_prefix=redis_prefix))
    assert isinstance(made, RedisCache)
    yield made
    made.close()


def test_a_stall_is_skipped_after_three_timeouts_and_probed_back(
    cache: RedisCache, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.put_many("fraud/1", ["row"], [0.25])
    assert cache.get_many("fraud/1", ["row"]) == [0.25]
    sent = 0
    script = cache._get

    def counted(*args: object, **kwargs: object) -> object:
        nonlocal sent
        sent += 1
        return script(*args, **kwargs)

    monkeypatch.setattr(cache, "_get", counted)
    admin = redis.Redis.from_url(redis_url)
    try:
        admin.client_pause(1500)  # every client of the server waits 1.5 s
        answers = [cache.get_many("fraud/1", ["row"]) for _ in range(60)]
    finally:
        admin.close()
    assert answers == [[None]] * 60, "a stalled cache misses, it does not fail"
    # three timeouts open the breaker; the rest are skipped but for a few probes (50, 100,
    # 200 ... ms after opening), however long the 60 calls took
    assert sent <= 3 + 6
    deadline = time.monotonic() + 20
    while cache.get_many("fraud/1", ["row"]) != [0.25]:  # back once the pause is over
        assert time.monotonic() < deadline, "the cache never came back"
        time.sleep(0.02)
    assert cache.breaker.state.value == "closed"
