"""Coalesce the online feature lookups of concurrent requests into one store call.

Requests that reach the lookup in the same event-loop turn share one
`online_vectors` round trip (as the micro-batcher shares one model call): under
load the per-call cost of the store is paid once per turn, not once per request.
A lone request waits one loop hop, nothing more. `fn` may return an awaitable (a store
call made off the event loop, `offload.py`): its result is handed out once it comes.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - item
R = TypeVar("R")  # result per item


class Coalescer(Generic[I, R]):
    """Runs `fn(items)` once for the items of every `submit` of one loop turn."""

    def __init__(
        self,
        fn: Callable[[list[I]], Sequence[R] | Awaitable[Sequence[R]]],
        max_items: int = 256,
    ) -> None:
        self._fn = fn
        self.max_items = max_items
        self._pending: list[tuple[list[I], asyncio.Future[list[R]]]] = []
        self._count = 0
        self._scheduled: asyncio.Handle | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.calls = 0

    async def submit(self, items: list[I]) -> list[R]:
        """One result per item, computed together with concurrent submissions."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[R]] = loop.create_future()
        self._pending.append((items, future))
        self._count += len(items)
        if self._count >= self.max_items:
            self._flush()
        elif self._scheduled is None:
            self._scheduled = loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        pending, self._pending, self._count = self._pending, [], 0
        if not pending:
            return
        items = [item for part, _ in pending for item in part]
        self.calls += 1
        try:
            results = self._fn(items)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request, not swallowed
            self._fail(pending, exc)
            return
        if inspect.isawaitable(results):
            task = asyncio.ensure_future(self._finish(pending, results))
            self._running.add(task)  # held until done (the loop keeps only weak references)
            task.add_done_callback(self._running.discard)
            return
        self._hand_out(pending, results)

    async def _finish(
        self,
        pending: list[tuple[list[I], asyncio.Future[list[R]]]],
        results: Awaitable[Sequence[R]],
    ) -> None:
        try:
            done = await results
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request, not swallowed
            self._fail(pending, exc)
            return
        self._hand_out(pending, done)

    @staticmethod
    def _fail(pending: list[tuple[list[I], asyncio.Future[list[R]]]], exc: Exception) -> None:
        for _, future in pending:
            if not future.done():
                future.set_exception(exc)

    @staticmethod
    def _hand_out(
        pending: list[tuple[list[I], asyncio.Future[list[R]]]], results: Sequence[R]
    ) -> None:
        start = 0
        for part, future in pending:
            end = start + len(part)
            if not future.done():
                future.set_result(list(results[start:end]))
            start = end
