"""Circuit breaker: state machine under a fake clock, and what `call` counts."""

from __future__ import annotations

import doctest

import pytest

from mlsd.errors import NotFoundError, UnavailableError
from mlsd.inference import breaker as breaker_module
from mlsd.inference.breaker import BreakerState, CircuitBreaker, FakeClock


def make(clock: FakeClock, threshold: int = 3) -> CircuitBreaker:
    return CircuitBreaker(threshold, reset_timeout_s=2.0, call_timeout_s=0.1, clock=clock)


def fail() -> None:
    raise UnavailableError("store down")


def test_doctest() -> None:
    result = doctest.testmod(breaker_module)
    assert result.attempted > 0
    assert result.failed == 0


def test_opens_after_threshold_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(2):
        with pytest.raises(UnavailableError):
            breaker.call(fail)
    assert breaker.state is BreakerState.CLOSED
    with pytest.raises(UnavailableError):
        breaker.call(fail)
    assert breaker.state is BreakerState.OPEN
    assert breaker.stats().opened == 1


def test_success_resets_the_streak() -> None:
    breaker = make(FakeClock())
    for _ in range(2):
        breaker.record_failure()
    assert breaker.call(lambda: "ok") == "ok"
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_open_refuses_at_once_without_calling() -> None:
    clock = FakeClock()
    breaker = make(clock, threshold=1)
    breaker.record_failure()
    called: list[int] = []
    with pytest.raises(UnavailableError, match="circuit open"):
        breaker.call(lambda: called.append(1))
    assert called == []
    assert breaker.stats().rejected == 1


def test_half_open_lets_one_trial_through() -> None:
    clock = FakeClock()
    breaker = make(clock, threshold=1)
    breaker.record_failure()
    clock.advance(1.9)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() is True
    assert breaker.allow() is False  # the trial is in flight
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() is True


def test_failed_trial_reopens_for_a_full_timeout() -> None:
    clock = FakeClock()
    breaker = make(clock, threshold=1)
    breaker.record_failure()
    clock.advance(2.0)
    with pytest.raises(UnavailableError):
        breaker.call(fail)
    assert breaker.state is BreakerState.OPEN
    clock.advance(1.0)
    assert breaker.state is BreakerState.OPEN
    clock.advance(1.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.stats().opened == 2


def test_a_trial_that_never_reports_expires() -> None:
    clock = FakeClock()
    breaker = make(clock, threshold=1)
    breaker.record_failure()
    clock.advance(2.0)
    assert breaker.allow() is True
    assert breaker.allow() is False
    clock.advance(2.0)
    assert breaker.allow() is True


def test_slow_success_counts_as_failure_but_returns() -> None:
    clock = FakeClock()
    breaker = make(clock, threshold=1)

    def slow() -> int:
        clock.advance(0.5)
        return 7

    assert breaker.call(slow) == 7
    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize("exc", [TimeoutError("t"), ConnectionRefusedError("c")])
def test_timeouts_and_refusals_become_unavailable(exc: Exception) -> None:
    breaker = make(FakeClock(), threshold=1)

    def boom() -> None:
        raise exc

    with pytest.raises(UnavailableError) as info:
        breaker.call(boom)
    assert info.value.__cause__ is exc
    assert breaker.state is BreakerState.OPEN


def test_other_errors_pass_through_uncounted() -> None:
    breaker = make(FakeClock(), threshold=1)

    def missing() -> None:
        raise NotFoundError("no such customer", field="customer_id")

    with pytest.raises(NotFoundError):
        breaker.call(missing)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.stats().failures == 0


def test_reset_closes() -> None:
    breaker = make(FakeClock(), threshold=1)
    breaker.record_failure()
    breaker.reset()
    assert breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    "kwargs",
    [{"failure_threshold": 0}, {"reset_timeout_s": 0.0}, {"call_timeout_s": -1.0}],
)
def test_bad_configuration(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


def test_threads_hammering_a_dying_backend_open_it_once() -> None:
    import threading

    breaker = CircuitBreaker(5, reset_timeout_s=60.0, call_timeout_s=1.0)
    refused = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal refused
        for _ in range(200):
            try:
                breaker.call(fail)
            except UnavailableError as exc:
                if "circuit open" in exc.message:
                    with lock:
                        refused += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = breaker.stats()
    assert stats.state is BreakerState.OPEN
    assert stats.opened == 1
    assert stats.rejected == refused
    assert stats.failures + stats.rejected == 1600
    assert stats.failures < 100  # once open, calls stop reaching the backend
