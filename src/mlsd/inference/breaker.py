"""A circuit breaker, so a dead backend fails fast instead of slowing every request.

Closed: calls go through; `failure_threshold` failures in a row (an
`UnavailableError`, a timeout, a refused connection, or a call slower than
`call_timeout_s`) open it. Open: calls are refused at once with
`UnavailableError` until the probe delay has passed. Half-open: one trial call
goes through; success closes the breaker, failure opens it again.

The probe delay adapts: the first trial comes `first_probe_s` after opening, and
each failed trial doubles the delay up to `reset_timeout_s`. A short stall is
thus over for the callers a few tens of milliseconds after the backend is back,
while a long outage costs one trial call per `reset_timeout_s`. With
`first_probe_s` left out, the delay is a fixed `reset_timeout_s`.

The breaker spawns no thread: the callee enforces its own timeout (a Redis socket
timeout, a SQLite busy timeout); the breaker only counts and refuses.

>>> clock = FakeClock()
>>> breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=1.0, clock=clock)
>>> for _ in range(2):
...     breaker.record_failure()
>>> breaker.state
<BreakerState.OPEN: 'open'>
>>> breaker.allow()
False
>>> clock.advance(1.0)
>>> breaker.state
<BreakerState.HALF_OPEN: 'half_open'>
>>> breaker.call(lambda: 42)
42
>>> breaker.state
<BreakerState.CLOSED: 'closed'>

Adaptive probing: 0.1 s, then 0.2 s after a failed trial, capped at 1 s.

>>> breaker = CircuitBreaker(1, reset_timeout_s=1.0, first_probe_s=0.1, clock=clock)
>>> breaker.record_failure()
>>> clock.advance(0.1)
>>> breaker.allow()
True
>>> breaker.record_failure()
>>> breaker.probe_delay_s
0.2
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ParamSpec, TypeVar

from mlsd.errors import UnavailableError

P = ParamSpec("P")
T = TypeVar("T")

#: Exceptions a breaker counts as a backend failure (others pass through uncounted).
FAILURES: tuple[type[BaseException], ...] = (UnavailableError, TimeoutError, ConnectionError)


class BreakerState(StrEnum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerStats:
    """Counters since the breaker was made."""

    state: BreakerState
    calls: int
    failures: int
    rejected: int
    opened: int
    consecutive_failures: int


class FakeClock:
    """A clock for tests and examples: time moves only when told."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class CircuitBreaker:
    """Counts backend failures and refuses calls while the backend looks dead."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout_s: float = 5.0,
        call_timeout_s: float = 0.05,
        *,
        first_probe_s: float | None = None,
        name: str = "backend",
        failures: tuple[type[BaseException], ...] = FAILURES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if reset_timeout_s <= 0 or call_timeout_s <= 0:
            raise ValueError("reset_timeout_s and call_timeout_s must be > 0")
        first = reset_timeout_s if first_probe_s is None else first_probe_s
        if not 0 < first <= reset_timeout_s:
            raise ValueError("first_probe_s must be > 0 and at most reset_timeout_s")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.first_probe_s = first
        self._failed_trials = 0
        self.call_timeout_s = call_timeout_s
        self.name = name
        self._failure_types = failures
        self._clock = clock
        self._lock = threading.Lock()
        self._opened_at: float | None = None  # None while closed
        self._trial_started: float | None = None  # a half-open trial in flight since
        self._consecutive = 0
        self._calls = 0
        self._failures = 0
        self._rejected = 0
        self._opened = 0

    @property
    def state(self) -> BreakerState:
        """Closed, open, or half-open (open and its reset timeout has passed)."""
        with self._lock:
            return self._state_locked()

    @property
    def probe_delay_s(self) -> float:
        """How long after opening (or a failed trial) the next trial call may go."""
        return min(self.reset_timeout_s, self.first_probe_s * 2.0**self._failed_trials)

    def _state_locked(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.probe_delay_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """Whether a call may go now; in half-open, only one trial call is let through."""
        return self.admit() is not None

    def admit(self) -> BreakerState | None:
        """Let a call go as a normal call (CLOSED) or as the one trial (HALF_OPEN), or
        refuse it (None, counted): a caller that must not wait on a trial tells them apart."""
        if self._opened_at is None:  # closed: no lock on the hot path (a racing open lets
            return BreakerState.CLOSED  # one more call through, counted like any other)
        with self._lock:
            state = self._state_locked()
            if state is BreakerState.CLOSED:
                return state
            now = self._clock()
            stale = (
                self._trial_started is not None
                and now - self._trial_started >= self.reset_timeout_s
            )
            if state is BreakerState.HALF_OPEN and (self._trial_started is None or stale):
                self._trial_started = now  # a trial never reported back expires: try again
                return state
            self._rejected += 1
            return None

    def counts(self, exc: BaseException) -> bool:
        """Whether `exc` is a backend failure this breaker counts."""
        return isinstance(exc, self._failure_types)

    def release_trial(self) -> None:
        """A trial ended by no fault of the backend (a bug, a cancel): count nothing."""
        with self._lock:
            self._trial_started = None

    def record_success(self) -> None:
        """A call worked: close the breaker."""
        if self._consecutive == 0 and self._opened_at is None and self._trial_started is None:
            self._calls += 1  # closed and healthy: nothing to reset, skip the lock
            return
        with self._lock:
            self._calls += 1
            self._consecutive = 0
            self._opened_at = None
            self._trial_started = None
            self._failed_trials = 0

    def record_failure(self) -> None:
        """A call failed: open the breaker after enough failures in a row (or a failed trial)."""
        with self._lock:
            self._calls += 1
            self._failures += 1
            self._consecutive += 1
            was_trial = self._trial_started is not None
            self._trial_started = None
            if was_trial or self._consecutive >= self.failure_threshold:
                if self._opened_at is None or was_trial:
                    self._opened += 1
                if was_trial:
                    self._failed_trials += 1
                self._opened_at = self._clock()

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` through the breaker.

        Raises `UnavailableError` at once while open; a counted failure is raised
        as `UnavailableError` too (chained). A call that answers but slower than
        `call_timeout_s` returns its result and still counts as a failure.
        """
        if not self.allow():
            raise UnavailableError(f"{self.name} is unavailable (circuit open)")
        started = self._clock()
        try:
            result = fn(*args, **kwargs)
        except self._failure_types as exc:
            self.record_failure()
            if isinstance(exc, UnavailableError):
                raise
            raise UnavailableError(f"{self.name} failed: {exc}") from exc
        except BaseException:
            with self._lock:  # not the backend's fault: release a trial slot, count nothing
                self._trial_started = None
            raise
        if self._clock() - started > self.call_timeout_s:
            self.record_failure()
        else:
            self.record_success()
        return result

    def stats(self) -> BreakerStats:
        """A snapshot of the counters."""
        with self._lock:
            return BreakerStats(
                state=self._state_locked(),
                calls=self._calls,
                failures=self._failures,
                rejected=self._rejected,
                opened=self._opened,
                consecutive_failures=self._consecutive,
            )

    def reset(self) -> None:
        """Close the breaker and forget the failure streak (admin action)."""
        with self._lock:
            self._opened_at = None
            self._trial_started = None
            self._consecutive = 0
            self._failed_trials = 0
