"""Thread priority: a scoring process's background threads run below its event loop.

A server's answers come from one thread (the event loop); beside it run the prediction
log's flusher, its compactor, the drift monitor, the rollout agent, the shadow courier,
the model watcher. Each is cheap on average, but their work comes in bursts: every second
the flusher writes the second's records to Parquet (~7 ms of CPU for 2,000 rows), and
the encoding before that holds the GIL. On the core the loop runs on, a request arriving
during a burst waits for the scheduler to hand the core back, and requests queue behind
it: the tail of the answers' latency is made of these bursts.

`lower_background_threads()` (called by `mlsd.serving.tuning.tune`, so by `mlsd serve`)
puts every thread started through `in_background` at nice `BACKGROUND_NICE`: when both
want the core the loop gets ~10 times more of it, and a woken loop preempts the burst
instead of waiting for its time slice. Under a real-time policy (a process started with
`chrt -f`, as the serving benchmark can isolate itself), the background threads move to
the normal policy, so the loop always preempts them. They are not starved: at nice 10 a
thread still gets ~10 % of a core that the loop saturates, more than the log needs at the
loop's maximum rate, and all of the core the loop leaves idle.

Measured (docs/benchmarks.md, "The night of 2026-12-01"): `/v1/score` at half its maximum
rate, prediction log and live drift on, p99 median of 6 runs 11.3 ms with the threads at
the loop's priority, 5.7 ms at nice 10 (nice 19: 6.5, SCHED_IDLE: 5.5 with 21-29 ms runs).
What nice 10 leaves is the GIL a lowered thread still holds; the Parquet log's encoding
and writing have since moved to a child process (`mlsd.predlog.writer`), which lowers
itself the same way.

Lowering a thread's priority needs no privilege; raising it again does, so a process
lowers its threads once, for good. Linux only (elsewhere nothing changes).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

#: The nice value background threads get under `lower_background_threads()`.
BACKGROUND_NICE = 10


class ThreadPriorities:
    """The background threads alive now, and the nice value they get (None: unchanged)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: set[int] = set()
        self.nice: int | None = None

    def run(self, target: Callable[[], object]) -> None:
        """Run `target` as a background thread: known while it runs, lowered if asked."""
        tid = threading.get_native_id()
        with self._lock:
            self._threads.add(tid)
            nice = self.nice
        try:
            if nice is not None:
                lower_thread(tid, nice)
            target()
        finally:
            with self._lock:
                self._threads.discard(tid)

    def lower(self, nice: int = BACKGROUND_NICE) -> int:
        """Lower every background thread, alive or to come, to `nice`; how many alive were."""
        with self._lock:
            self.nice = nice
            alive = list(self._threads)
            return sum(lower_thread(tid, nice) for tid in alive)

    def alive(self) -> int:
        """How many background threads run now."""
        with self._lock:
            return len(self._threads)


#: The process's background threads.
PRIORITIES = ThreadPriorities()


def in_background(
    target: Callable[[], object], priorities: ThreadPriorities = PRIORITIES
) -> Callable[[], None]:
    """`target` as a background thread's target: `Thread(target=in_background(self._run))`."""

    def run() -> None:
        priorities.run(target)

    return run


def lower_background_threads(nice: int = BACKGROUND_NICE) -> int:
    """Every background thread of this process, alive or to come, at `nice` (see above)."""
    return PRIORITIES.lower(nice)


def lower_thread(tid: int, nice: int) -> bool:
    """Thread `tid` of this process under the normal policy at nice >= `nice`; False where
    that cannot be done (not Linux, the thread gone, not permitted)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        if os.sched_getscheduler(tid) in (os.SCHED_FIFO, os.SCHED_RR):
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, tid, max(nice, os.getpriority(os.PRIO_PROCESS, tid)))
    except OSError:
        return False
    return True
