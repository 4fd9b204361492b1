"""The offloader: a blocking call off the event loop, within a deadline, behind a breaker."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from mlsd.errors import UnavailableError
from mlsd.inference.breaker import BreakerState, CircuitBreaker
from mlsd.inference.offload import Offloader


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds every call until set (a stalled backend); set at the end so threads finish."""
    event = threading.Event()
    yield event
    event.set()


def _offloader(breaker: CircuitBreaker, deadline_s: float = 0.05) -> Offloader:
    return Offloader(breaker, deadline_s, workers=8, name="store")


def test_an_answer_in_time_is_returned_and_counted_a_success() -> None:
    breaker = CircuitBreaker(3, 1.0, call_timeout_s=5.0)
    offload = _offloader(breaker, deadline_s=5.0)
    assert asyncio.run(offload.call(lambda x: x * 2, 21)) == 42
    assert breaker.stats().calls == 1
    offload.close()


def test_a_stall_releases_every_waiter_at_the_first_deadline_and_opens(
    gate: threading.Event,
) -> None:
    breaker = CircuitBreaker(3, 30.0)  # stays open for the test
    offload = _offloader(breaker)

    async def many() -> tuple[list[BaseException | int], float]:
        started = time.monotonic()
        calls = [offload.call(gate.wait) for _ in range(5)]
        out = await asyncio.gather(*calls, return_exceptions=True)
        return list(out), time.monotonic() - started

    results, took = asyncio.run(many())
    assert all(isinstance(r, UnavailableError) for r in results), results
    assert took < 5.0  # released by the deadline, not by the stalled calls (never here)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(UnavailableError, match="circuit open"):
        asyncio.run(offload.call(lambda: 1))  # refused at once, no thread used
    offload.close()


def test_a_probe_never_makes_a_request_wait_and_any_answer_closes(
    gate: threading.Event,
) -> None:
    breaker = CircuitBreaker(1, 1.0, first_probe_s=0.01)
    breaker.record_failure()  # open
    offload = _offloader(breaker)

    async def probe_then_recover() -> None:
        deadline = time.monotonic() + 10
        while breaker.state is not BreakerState.HALF_OPEN:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        with pytest.raises(UnavailableError, match="probing"):
            await offload.call(gate.wait)  # the trial: in the background, refused at once
        gate.set()  # the backend answers (late, after the stall)
        while breaker.state is not BreakerState.CLOSED:
            assert time.monotonic() < deadline, breaker.stats()
            await asyncio.sleep(0.005)
        assert await offload.call(lambda: "back") == "back"

    asyncio.run(probe_then_recover())
    offload.close()


def test_an_error_of_the_backend_counts_and_a_bug_passes_through() -> None:
    breaker = CircuitBreaker(5, 1.0)
    offload = _offloader(breaker, deadline_s=5.0)

    def refused() -> None:
        raise ConnectionError("refused")

    def bug() -> None:
        raise KeyError("bug")

    with pytest.raises(UnavailableError, match="refused"):
        asyncio.run(offload.call(refused))
    assert breaker.stats().consecutive_failures == 1
    with pytest.raises(KeyError):
        asyncio.run(offload.call(bug))
    assert breaker.stats().consecutive_failures == 1
    offload.close()
