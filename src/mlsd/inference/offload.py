"""Blocking backend calls kept off the event loop, each with a deadline and a breaker.

A Redis client (the online store, the prediction cache) blocks its caller until Redis
answers or the socket times out. Called on the event loop, a stalled Redis froze every
request (three 2 s stalls: p50 1.07 s). Here the call runs on a small thread pool and the
request waits at most `deadline_s`:

- closed breaker: the request waits for the answer or the deadline. A missed deadline
  fails that request *and every other request waiting on the same backend* at once (they
  wait on the same stalled server), each counted by the breaker, which then opens;
- open breaker: refused at once (the caller degrades), no thread used;
- half-open: the trial call runs in the background and the request is refused at once,
  so a probe never costs a request its latency; any answer to the trial (late too: a
  stall that ends delivers it) closes the breaker, so service is back as soon as the
  backend answers.

Threads stuck in a stalled call are bounded by the pool (`workers`): when all are busy new
calls queue, miss their deadline and degrade, as they would on the loop, minus the freeze.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mlsd.errors import UnavailableError
from mlsd.inference.breaker import BreakerState, CircuitBreaker

T = TypeVar("T")


class Offloader:
    """Runs `fn(*args)` on its pool for an awaiting caller, within `deadline_s`."""

    def __init__(
        self, breaker: CircuitBreaker, deadline_s: float, *, workers: int = 8, name: str = ""
    ) -> None:
        if deadline_s <= 0:
            raise ValueError("deadline_s must be > 0")
        self.breaker = breaker
        self.deadline_s = deadline_s
        self.name = name or breaker.name
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"mlsd-offload-{self.name}")
        self._waiting: set[asyncio.Future[Any]] = set()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)`'s result; UnavailableError when refused, failed or past the deadline."""
        admitted = self.breaker.admit()
        if admitted is None:
            raise UnavailableError(f"{self.name} is unavailable (circuit open)")
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._pool, fn, *args)
        if admitted is BreakerState.HALF_OPEN:
            work.add_done_callback(self._trial_done)
            raise UnavailableError(f"{self.name} is unavailable (probing it)")
        started = time.perf_counter()
        gate: asyncio.Future[T] = loop.create_future()
        self._waiting.add(gate)
        work.add_done_callback(lambda done: self._answered(done, gate, started))
        timer = loop.call_later(self.deadline_s, self._expired, gate)
        try:
            return await gate
        finally:
            timer.cancel()
            self._waiting.discard(gate)

    def _answered(
        self, work: asyncio.Future[Any], gate: asyncio.Future[Any], started: float
    ) -> None:
        exc = None if work.cancelled() else work.exception()  # retrieved: never "unhandled"
        if gate.done():  # past its deadline already (counted then)
            return
        if exc is None and not work.cancelled():
            slow = time.perf_counter() - started > self.breaker.call_timeout_s
            self.breaker.record_failure() if slow else self.breaker.record_success()
            gate.set_result(work.result())
        elif exc is not None and self.breaker.counts(exc):
            self.breaker.record_failure()
            failure = UnavailableError(f"{self.name} failed: {exc}")
            failure.__cause__ = exc
            gate.set_exception(failure)
        else:
            gate.set_exception(exc or UnavailableError(f"{self.name}: call cancelled"))

    def _expired(self, gate: asyncio.Future[Any]) -> None:
        """`gate` missed its deadline: it and every caller still waiting give up now."""
        if gate.done():
            return
        message = f"{self.name} did not answer within {self.deadline_s * 1000:.0f} ms"
        for waiting in list(self._waiting):
            if not waiting.done():
                self.breaker.record_failure()
                waiting.set_exception(UnavailableError(message))

    def _trial_done(self, work: asyncio.Future[Any]) -> None:
        exc = None if work.cancelled() else work.exception()
        if work.cancelled() or (exc is not None and not self.breaker.counts(exc)):
            self.breaker.release_trial()
        elif exc is not None:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()  # answered, however late: the backend is back

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` in the background, unawaited (a write that may be dropped)."""
        with contextlib.suppress(RuntimeError):  # shut down: the write is dropped
            self._pool.submit(fn, *args)

    def close(self) -> None:
        """Stop taking calls; threads stuck in a call end with their socket timeout."""
        self._pool.shutdown(wait=False, cancel_futures=True)
