"""An asyncio micro-batcher, in the manner of Triton's dynamic batcher.

Concurrent requests for one model are queued; the queue is flushed as one model
call when it holds `max_batch_size` rows, when the oldest request has waited
`max_delay_ms`, or — adaptively — as soon as an event-loop turn brought no new
rows: a generous maximum delay is then only waited when requests keep coming,
never when the batch cannot fill (a fixed wait served 11.9k rows/s at (256 rows,
5 ms) against 275k at (64, 0 ms) with 64 clients). `adaptive=False` restores the
fixed wait. With `max_delay_ms == 0` the batcher groups only what arrives in the
same event-loop turn; with `max_delay_ms < 0` it is off and each request calls
the model at once (no extra loop hop: best when the model takes microseconds and
the server is not saturated).

The model call runs on the event loop thread: a tree ensemble on a small batch
takes tens of microseconds, less than a hop to a thread pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from mlsd.errors import ValidationError

T = TypeVar("T")

#: The batched function: rows (n, k) -> (one score per row, what scored them).
BatchFn = Callable[[np.ndarray], tuple[np.ndarray, T]]


@dataclass(frozen=True)
class BatchConfig:
    """Per-model batching: at most `max_batch_size` rows, waiting at most `max_delay_ms`."""

    max_batch_size: int = 64
    max_delay_ms: float = 0.0
    #: Flush at the first event-loop turn that brought no new rows, not only at the deadline.
    adaptive: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_size <= 65_536:
            raise ValidationError("max_batch_size must be in [1, 65536]", field="max_batch_size")
        if self.max_delay_ms > 10_000:
            raise ValidationError("max_delay_ms must be <= 10000", field="max_delay_ms")

    @property
    def enabled(self) -> bool:
        """False when every request calls the model by itself."""
        return self.max_delay_ms >= 0 and self.max_batch_size > 1


class MicroBatcher(Generic[T]):
    """Groups concurrent `submit` calls into batched calls of `fn`."""

    def __init__(
        self,
        fn: BatchFn[T],
        config: BatchConfig | None = None,
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._fn = fn
        self.config = config or BatchConfig()
        self._on_batch = on_batch
        self._pending: list[tuple[np.ndarray, asyncio.Future[tuple[np.ndarray, T]]]] = []
        self._rows = 0
        self._scheduled: asyncio.Handle | None = None
        self._deadline = 0.0
        self._seen = 0  # rows queued at the last adaptive check
        self.batches = 0
        self.rows = 0

    def _call(self, values: np.ndarray) -> tuple[np.ndarray, T]:
        self.batches += 1
        self.rows += len(values)
        if self._on_batch is not None:
            self._on_batch(len(values))
        return self._fn(values)

    async def submit(self, values: np.ndarray) -> tuple[np.ndarray, T]:
        """Score `values` (n, k), possibly together with other requests' rows."""
        if not self.config.enabled or len(values) >= self.config.max_batch_size:
            return self._call(values)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[np.ndarray, T]] = loop.create_future()
        self._pending.append((values, future))
        self._rows += len(values)
        if self._rows >= self.config.max_batch_size:
            self._flush()
        elif self._scheduled is None:
            delay = self.config.max_delay_ms / 1000.0
            if delay <= 0:
                self._scheduled = loop.call_soon(self._flush)
            elif self.config.adaptive:
                self._deadline = loop.time() + delay
                self._seen = self._rows
                self._scheduled = loop.call_soon(self._check, loop)
            else:
                self._scheduled = loop.call_later(delay, self._flush)
        return await future

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        """Adaptive: wait one more turn while rows keep arriving and time is left."""
        if self._rows > self._seen and loop.time() < self._deadline:
            self._seen = self._rows
            self._scheduled = loop.call_soon(self._check, loop)
            return
        self._flush()

    def _flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        pending, self._pending, self._rows = self._pending, [], 0
        if not pending:
            return
        if len(pending) == 1:
            values = pending[0][0]
        else:
            values = np.concatenate([v for v, _ in pending], axis=0)
        try:
            scores, tag = self._call(values)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request, not swallowed
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for part, future in pending:
            end = start + len(part)
            if not future.done():  # a cancelled request (client went away) is skipped
                future.set_result((scores[start:end], tag))
            start = end

    @property
    def queued(self) -> int:
        """Rows waiting for the next flush."""
        return self._rows
