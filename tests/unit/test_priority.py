"""Background threads go below the event loop when the process asks (`mlsd.priority`)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from mlsd.priority import ThreadPriorities, in_background, lower_thread

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux threads")


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


class _Parked:
    """A background thread that waits until released, reporting its native id."""

    def __init__(self, priorities: ThreadPriorities) -> None:
        self.tid = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=in_background(self._run, priorities))
        self.thread.start()
        assert self.started.wait(10)

    def _run(self) -> None:
        self.tid = threading.get_native_id()
        self.started.set()
        self.release.wait(10)

    def stop(self) -> None:
        self.release.set()
        self.thread.join(10)


def test_lower_reaches_live_and_later_background_threads_not_the_caller() -> None:
    priorities = ThreadPriorities()
    base = _nice(threading.get_native_id())
    target = min(base + 5, 19)
    early = _Parked(priorities)
    try:
        assert _nice(early.tid) == base  # nothing asked yet: unchanged
        assert priorities.lower(target) == 1
        assert _nice(early.tid) == target
        assert _nice(threading.get_native_id()) == base  # the caller (the loop) is not touched
        late = _Parked(priorities)
        try:
            assert _nice(late.tid) == target  # lowered as it starts
            assert priorities.alive() == 2
        finally:
            late.stop()
    finally:
        early.stop()
    assert priorities.alive() == 0  # ended threads are forgotten (their ids get reused)


def test_lower_never_raises_a_thread_already_lower() -> None:
    priorities = ThreadPriorities()
    base = _nice(threading.get_native_id())
    parked = _Parked(priorities)
    try:
        os.setpriority(os.PRIO_PROCESS, parked.tid, min(base + 8, 19))
        priorities.lower(min(base + 3, 19))
        assert _nice(parked.tid) == min(base + 8, 19)
    finally:
        parked.stop()


def test_a_real_time_thread_moves_to_the_normal_policy() -> None:
    priorities = ThreadPriorities()
    parked = _Parked(priorities)
    try:
        try:
            os.sched_setscheduler(parked.tid, os.SCHED_FIFO, os.sched_param(1))
        except PermissionError:
            pytest.skip("SCHED_FIFO needs root or CAP_SYS_NICE")
        assert lower_thread(parked.tid, 10)
        assert os.sched_getscheduler(parked.tid) == os.SCHED_OTHER
        assert _nice(parked.tid) >= 10
    finally:
        parked.stop()


def test_a_thread_that_does_not_exist_is_reported_not_raised() -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert lower_thread(pid_max + 1, 10) is False
