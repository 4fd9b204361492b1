"""The shadow queue: shadows are scored by one worker thread, off the response path.

This is the in-thread path: every shadow without a shadow process, and, with one
(`mlsd.inference.shadow_process`, as under `mlsd serve`), the shadows it cannot reproduce
(a wrapped runtime, features of their own). Jobs and stream processors (`score_sync`) score
their shadows inline instead.

A shadow scored on the event loop would run its model inline (the micro-batcher calls the
runtime on the loop): a challenger that takes 50 ms would delay every answer. Here a
request's shadows are put on a bounded queue and scored by a worker thread through the
pipeline's synchronous path (features, cache, model, observers) — reusing the primary's
feature rows when the shadow takes the same features, so a shadow costs no second online
store read and is compared with the champion on exactly its inputs; the runtimes release the
GIL while they compute. When the queue is full the shadow is dropped and counted
(`mlsd_shadow_dropped_total`): memory stays bounded whatever the shadow's speed, and a
shadow that raises is logged and forgotten.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from mlsd.inference.metrics import ServingMetrics
from mlsd.inference.observers import ScoredBatch, ScoringRequest
from mlsd.inference.routing import Variant
from mlsd.priority import in_background

log = logging.getLogger(__name__)

#: One shadow to score: its variant, the request, the primary's batch (for its feature rows).
Item = tuple[Variant, ScoringRequest, ScoredBatch | None]
#: Scores a list of shadows (in one model call per variant where it can) and tells the
#: observers; a failing shadow is reported by it, never raised.
ShadowScorer = Callable[[list[Item]], None]


class ShadowQueue:
    """A bounded queue of (shadow variant, request) and the thread that scores them."""

    def __init__(
        self,
        score: ShadowScorer,
        metrics: ServingMetrics,
        capacity: int = 1024,
        *,
        linger_s: float = 0.005,
        max_batch: int = 256,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._score = score
        self.linger_s = linger_s
        self.max_batch = max_batch
        self._metrics = metrics
        self._queue: queue.Queue[Item] = queue.Queue(capacity)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0

    def put(
        self,
        variants: tuple[Variant, ...],
        request: ScoringRequest,
        primary: ScoredBatch | None = None,
    ) -> None:
        """Queue every shadow of `request`; drop (and count) what does not fit. Never waits."""
        self._start()
        for variant in variants:
            try:
                self._queue.put_nowait((variant, request, primary))
            except queue.Full:
                self.dropped += 1
                self._metrics.child(self._metrics.shadow_dropped, variant.name).inc()
        self._metrics.shadow_queued.set(self._queue.qsize())

    def join(self) -> None:
        """Wait until every queued shadow was scored (tests, shutdown)."""
        self._queue.join()

    @property
    def depth(self) -> int:
        """Shadows waiting now."""
        return self._queue.qsize()

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=in_background(self._work), name="mlsd-shadow-worker", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        """Take what has queued up (lingering a few ms after the first), score it, repeat.

        Waking the worker for each request would hand the GIL back and forth once per
        request; lingering gathers a few, scored in one model call per variant.
        """
        while True:
            items = [self._queue.get()]
            if self.linger_s > 0:
                time.sleep(self.linger_s)
            while len(items) < self.max_batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._score(items)
            except Exception:
                log.exception("%d shadow(s) failed", len(items))
            finally:
                for _ in items:
                    self._queue.task_done()
