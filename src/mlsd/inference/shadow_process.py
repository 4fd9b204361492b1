"""Shadows scored by a process of their own: most of their work off the server's GIL.

Scored by a thread (`mlsd.inference.shadow_queue`), a 100 % shadow doubled the server's
Python work that competes with the event loop for the GIL: the shadow's prediction-log
records (journal writes, the flusher's encoding), its observers, its model call's glue; the
champion's p99 at half the maximum rate grew 86 % in one benchmark run (benchmarks/serving,
`mlsd_shadow`). Here `put` only appends to a list (under a microsecond on the event loop);
a courier thread takes what gathered every `linger_s` (50 ms: most of a job's cost is per
job, ~0.45 ms of pickling, socket and GIL hand-overs against a few µs a shadow, so fewer and
larger jobs; the comparison is read seconds later, by the rollout agent's checks and the
drift windows, so 50 ms more do not matter), keeps in the thread path what the child cannot
reproduce, and sends the rest as one plain pickle (protocol 5): per variant the primary's
feature rows as one matrix (the shadow is compared with the champion on exactly its
inputs), the requests as columns (`shadow_child.to_wire`: lists of ids, flags and amounts,
UTC times as microseconds; a datetime costs twice as much to pickle), not a tuple per
request. The child
(`mlsd.inference.shadow_child`, its own interpreter, on idle CPU only) loads the
shadow version from the registry, scores the rows, writes the shadow's prediction-log
records itself, and does the shadow work of the observers that have a twin
(`TwinnedObserver`: metrics, live drift; each job names the twins, sending what builds
one only once to each child), answering with the scores and each twin's summary. The
courier hands them to the pipeline (`deliver`), which gives a twinned observer its summary
(one call per variant and job) and tells only the others (`ShadowWatch` pairing, ...) of
each shadow. Measured in process (benchmarks/serving/courier_cost.py, jobs of 64, load 2-3
on 2 cores): the server spends 9-17 µs of CPU per shadow (shipping, taking back, drift's
drain) against 21-27 µs when the metrics and drift were told of each shadow in the server;
at the benchmark's half rate (about 1,300-2,000 shadows/s today: ~32 a 20 ms job, ~80 a
50 ms one) 25-31 µs a shadow with 20 ms jobs of tuples against 15-17 µs with 50 ms jobs of
columns (three alternating runs, load 2.5-4.5 on 2 cores, 2026-12-02); at the same job size
(64) the columns alone are within the noise of that day (15-20 µs either way). The event
loop's lateness p99 (benchmarks/serving/loop_lateness.py, a 1 ms heartbeat) grew +27 to
+100 % with a 100 % shadow before, −1 to +10 % after (three alternating runs each).

Bounded: at most `capacity` shadows wait and `max_in_flight` jobs of at most `max_batch`
are with the child; beyond, a shadow is dropped and counted (`mlsd_shadow_dropped_total`),
as are the shadows of a job lost with a child that died. A child that dies, or answers
nothing for `hung_s`, is killed and replaced (`mlsd_shadow_process_restarts_total`; starts
that fail are retried with a wait doubling up to 30 s): the answers never wait for it.
The child runs in the idle class, so a machine busy with other work starves it: past its
limit (`hung_s`, or `start_timeout_s` to start), a child still runnable that has not used
as much CPU since is starved, not hung, and waited for (`cpu_s`, Linux's /proc; a child
asleep, stopped, or spinning on CPU is hung). Killed for it, a starved child lost its jobs
and was replaced by one that paid its start again, as starved (a test waiting for 60
shadows saw none, CI 2026-12-02). /proc's schedstat cannot tell it: the wait a task is in
is added only when it next runs.

A shadow goes to the child when its model is a registry version as the host built it (an
ONNX or LightGBM runtime: the child builds the same) with the primary's features; any other
(a wrapped runtime, features of its own to read from the online store) is scored by the
pipeline's thread (`fallback`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from mlsd.inference import shadow_child
from mlsd.inference.metrics import ServingMetrics
from mlsd.inference.observers import ScoredBatch, ScoringRequest, TwinnedObserver
from mlsd.inference.routing import Variant
from mlsd.inference.runtimes import LightGBMRuntime, OnnxRuntime
from mlsd.inference.shadow_queue import Item, ShadowScorer
from mlsd.inference.spec import LoadedModel
from mlsd.priority import in_background
from mlsd.settings import Settings

log = logging.getLogger(__name__)

#: Takes one variant's scored shadows back: (variant, the server's copy of its version, the
#: items, scores of their rows, which items were scored, latency s, model call s, error,
#: the twins' summaries by twin id).
Deliver = Callable[
    [Variant, LoadedModel, list[Item], np.ndarray, np.ndarray, float, float, str | None,
     dict[int, Any]],
    None,
]  # fmt: skip
#: The observers whose shadow work a twin in the child does, by twin id (read every job).
Twinned = Callable[[], dict[int, TwinnedObserver]]
#: Longest wait between two attempts to start a child.
MAX_BACKOFF_S = 30.0


@dataclass
class _Sent:
    """A job with the child: when it left, and per variant what it holds."""

    at: float
    groups: list[tuple[Variant, LoadedModel, list[Item]]]
    cpu: float | None  # the child's CPU time by then (s; None: not known)

    @property
    def items(self) -> int:
        return sum(len(items) for _, _, items in self.groups)


class _Group:
    """One variant's shadows in a job being made: its version (None: the child cannot score
    it), and the shadows the child can score on their primary's rows."""

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        try:
            found: LoadedModel | None = variant.endpoint.current()
        except Exception:  # noqa: BLE001 - the thread path reports it
            found = None
        self.model = found if found is not None and reproducible(found) else None
        self.items: list[Item] = []

    def split(self, items: list[Item]) -> list[Item]:
        """Keep the items the child can score (on their primary's rows, of the same
        features); return the others."""
        if self.model is None:
            return items
        names = self.model.feature_names
        alone: list[Item] = []
        last: LoadedModel | None = None
        same = False
        for item in items:  # the primary's model rarely changes within a job: compared once
            primary = item[2]
            if primary is not None:
                if primary.model is not last:
                    last, same = primary.model, primary.model.feature_names == names
                if same:
                    self.items.append(item)
                    continue
            alone.append(item)
        return alone

    def wire(self) -> shadow_child.Group:
        """The group as the child takes it: the rows as one matrix, the requests as columns."""
        if self.model is None:
            raise ValueError("a group the child cannot score has no wire form")
        requests = [request for _, request, _ in self.items]
        primaries = [primary for _, _, primary in self.items if primary is not None]
        values = np.concatenate([p.values for p in primaries])
        return (self.variant.name, self.model.name, self.model.version, values,
                shadow_child.to_wire(requests, primaries))  # fmt: skip


def cpu_s(pid: int) -> tuple[str, float] | None:
    """Process `pid`'s state (R: running or runnable, S: asleep, ...) and the CPU time all
    its threads used (s), from Linux's /proc/PID/stat; None where it is not known."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()  # after the command's name
        return fields[0].decode(), (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, ValueError, IndexError):
        return None


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def reproducible(model: LoadedModel) -> bool:
    """Whether a child loading `model`'s version from the registry scores exactly as it."""
    return isinstance(model.runtime, OnnxRuntime | LightGBMRuntime)


class ShadowProcess:
    """The server's side of the shadow scorer process: the bounded list, the courier."""

    def __init__(
        self,
        settings: Settings,
        metrics: ServingMetrics,
        deliver: Deliver,
        fallback: ShadowScorer,
        *,
        twinned: Twinned | None = None,
        log_predictions: bool = True,
        capacity: int = 1024,
        linger_s: float = 0.05,
        max_batch: int = 256,
        max_in_flight: int = 2,
        hung_s: float = 60.0,
        start_timeout_s: float = 120.0,
    ) -> None:
        if capacity < 1 or max_batch < 1 or max_in_flight < 1:
            raise ValueError("capacity, max_batch and max_in_flight must be >= 1")
        self.settings = settings
        self.log_predictions = log_predictions
        self.capacity, self.linger_s, self.max_batch = capacity, linger_s, max_batch
        self.max_in_flight, self.hung_s = max_in_flight, hung_s
        self.start_timeout_s = start_timeout_s
        self._metrics = metrics
        self._deliver = deliver
        self._fallback = fallback
        self._twinned = twinned
        self._twins_sent: set[int] = set()  # twin ids whose spec the running child has
        self._pending: list[Item] = []
        self._sent: dict[int, _Sent] = {}
        self._seq = 0
        self._taking = False  # items taken from the list, not yet sent on
        self._due = 0.0  # when the next job may leave (monotonic)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._poller: tuple[Connection, select.poll] | None = None  # for `_conn`
        self._failures = 0  # since the last job answered: the wait before the next start
        self.dropped = 0
        self.restarts = 0

    # -- the scoring path ---------------------------------------------------------------------

    def put(
        self,
        variants: tuple[Variant, ...],
        request: ScoringRequest,
        primary: ScoredBatch | None = None,
    ) -> None:
        """Queue every shadow of `request`; drop (and count) what does not fit. Never waits."""
        if self._thread is None:
            self._start()
        with self._lock:
            for variant in variants:
                if len(self._pending) >= self.capacity:
                    self._drop(variant.name, 1)
                else:
                    self._pending.append((variant, request, primary))
        if not self._wake.is_set():
            self._wake.set()

    @property
    def depth(self) -> int:
        """Shadows waiting or with the child now."""
        with self._lock:
            return len(self._pending) + self._shipped()

    @property
    def in_flight(self) -> int:
        """Shadows with the child now (shipped, not answered)."""
        with self._lock:
            return self._shipped()

    def _shipped(self) -> int:
        return sum(s.items for s in self._sent.values())

    @property
    def pid(self) -> int | None:
        """The child's process id (None while none runs)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every queued shadow was scored and handed back, or dropped."""
        with self._changed:
            return self._changed.wait_for(
                lambda: not self._pending and not self._sent and not self._taking, timeout
            )

    def close(self, timeout_s: float = 5.0) -> None:
        """Score what is queued (waiting at most `timeout_s`), then stop the child."""
        if self._thread is not None:
            self.join(timeout_s)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s + 5.0)
        self._end_child(graceful=True)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=in_background(self._run), name="mlsd-shadow-courier", daemon=True
                )
                self._thread.start()

    def _drop(self, variant: str, n: int) -> None:
        self.dropped += n
        self._metrics.child(self._metrics.shadow_dropped, variant).inc(n)

    # -- the courier --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._turn()
            except Exception:  # the courier must outlive any bug: log it, go on
                log.exception("shadow courier failed")
                self._stop.wait(1.0)

    def _turn(self) -> None:
        """Keep a child running (from the first shadow on), ship, take answers back."""
        if self._conn is None and not self._spawn():  # none yet, or it died: start one
            return
        if not self._pending and not self._sent:
            if self._wake.wait(1.0):
                self._due = time.monotonic() + self.linger_s  # let a few requests gather
            elif self._process is not None and self._process.poll() is not None:
                self._died(f"exited (code {self._exitcode()})")  # found while idle
            self._wake.clear()
            return
        wait = max(0.0, self._due - time.monotonic())
        if len(self._sent) >= self.max_in_flight:
            self._receive(self.linger_s)  # nothing may leave before an answer
        elif self._sent:  # answers until the next job is due (none: a linger, not a spin)
            self._receive(wait if self._pending else self.linger_s)
        elif wait > 0:
            self._stop.wait(wait)
        if time.monotonic() < self._due and len(self._pending) < self.max_batch:
            return  # one job per linger: an answer must not send a job per request
        if self._conn is not None and self._pending and len(self._sent) < self.max_in_flight:
            self._ship(self._conn)
            self._due = time.monotonic() + self.linger_s
        oldest = min(self._sent.values(), key=lambda s: s.at, default=None)
        if oldest is not None and self._hung(oldest.at, oldest.cpu, self.hung_s):
            self._died(f"answered nothing for {self.hung_s:g} s")

    def _hung(self, since: float, cpu: float | None, limit_s: float) -> bool:
        """Whether the child, busy since `since` (monotonic; `cpu`: its CPU time then), is
        past `limit_s` and not merely starved: still runnable, it has not used `limit_s`
        of CPU since (a look at /proc only once past the limit)."""
        if time.monotonic() - since <= limit_s:
            return False
        process = self._process
        now = None if cpu is None or process is None else cpu_s(process.pid)
        if cpu is None or now is None:
            return True
        state, used = now
        return state != "R" or used - cpu > limit_s

    def _spawn(self) -> bool:
        """Start a child and wait until it is ready; False (and a longer wait) if it fails."""
        if self._failures:
            self._stop.wait(min(MAX_BACKOFF_S, 0.5 * 2 ** (self._failures - 1)))
            if self._stop.is_set():
                return False
        try:
            process, ours = self._popen()
        except OSError as exc:  # no process, or it died before it read its settings
            self._failures += 1
            log.warning("shadow scorer process did not start: %s", exc)
            return False
        self._process, self._conn = process, ours
        self._twins_sent = set()
        started, cpu = time.monotonic(), cpu_s(process.pid)
        while (
            not self._stop.is_set()
            and not self._hung(started, None if cpu is None else cpu[1], self.start_timeout_s)
            and process.poll() is None
        ):
            try:
                if ours.poll(0.25):
                    if ours.recv() == shadow_child.READY:
                        log.info("shadow scorer process %s ready", process.pid)
                        return True
                    break
            except (EOFError, OSError):
                break
        if not self._stop.is_set():
            self._died(f"did not start (code {self._exitcode()})")
        return False

    def _popen(self) -> tuple[subprocess.Popen[bytes], Connection]:
        """`python -m mlsd.inference.shadow_child FD` on one end of a socket pair.

        Not multiprocessing's spawn: it re-runs the parent's main script in the child, and
        an embedding script without a `__main__` guard would start its server again there.
        The child gets this process's `sys.path`, then its settings through the pipe.
        """
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "mlsd.inference.shadow_child", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        try:
            conn.send((self.settings, self.log_predictions))
        except OSError:
            conn.close()
            process.kill()
            process.wait()
            raise
        return process, conn

    def _ship(self, conn: Connection) -> None:
        with self._lock:
            items = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            self._taking = True  # join waits until they are sent on (or to the thread)
        try:
            self._send(conn, items)
        finally:
            with self._changed:
                self._taking = False
                self._changed.notify_all()

    def _send(self, conn: Connection, items: list[Item]) -> None:
        by_variant: dict[int, list[Item]] = {}  # one version each a job
        for item in items:
            by_variant.setdefault(id(item[0]), []).append(item)
        alone: list[Item] = []
        sent: list[_Group] = []
        for of_variant in by_variant.values():
            group = _Group(of_variant[0][0])
            alone += group.split(of_variant)
            if group.items:
                sent.append(group)
        if alone:
            self._fallback(alone)
        if not sent:
            return
        job: shadow_child.Job = (self._seq + 1, [g.wire() for g in sent], self._twins())
        self._seq += 1
        with self._lock:
            self._sent[self._seq] = _Sent(
                time.monotonic(),
                [(g.variant, g.model, g.items) for g in sent if g.model is not None],
                self._cpu(),
            )
        self._metrics.shadow_queued.set(len(self._pending))
        try:  # a plain pickle: multiprocessing's own pickler costs ~20 µs more a job
            conn.send_bytes(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, ValueError) as exc:
            self._died(f"took no job ({exc})")

    def _twins(self) -> shadow_child.Twins:
        """The observers' twins as of now: what builds them for those new to this child."""
        twins: shadow_child.Twins = []
        for tid, observer in ({} if self._twinned is None else self._twinned()).items():
            if tid in self._twins_sent:
                twins.append((tid, None))
                continue
            try:
                twins.append((tid, observer.shadow_twin()))
            except Exception:  # that observer is told of each shadow instead
                log.exception("observer %r has no shadow twin", observer)
                continue
            self._twins_sent.add(tid)
        return twins

    def _receive(self, timeout: float) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            if not self._ready(conn, timeout):
                return
            seq, results = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            self._died(f"closed its pipe (code {self._exitcode()})")
            return
        with self._lock:
            sent = self._sent.pop(seq, None)
        self._failures = 0
        if sent is not None:
            for (variant, model, items), result in zip(sent.groups, results, strict=True):
                try:
                    self._deliver(variant, model, items, *result)
                except Exception:  # one variant's observers failing must not stop the courier
                    log.exception("shadow %s: handing back %d scorings failed",
                                  variant.name, len(items))  # fmt: skip
        with self._changed:
            self._changed.notify_all()

    def _ready(self, conn: Connection, timeout: float) -> bool:
        """Whether an answer waits (up to `timeout` s): one poll(2) on a poller kept for the
        child, not `Connection.poll`'s new selector each call (~60 µs of CPU a job)."""
        poller = self._poller
        if poller is None or poller[0] is not conn:
            poller = self._poller = (conn, select.poll())
            poller[1].register(conn.fileno(), select.POLLIN)
        return bool(poller[1].poll(max(0, math.ceil(timeout * 1000.0))))

    # -- the child's end ----------------------------------------------------------------------

    def _cpu(self) -> float | None:
        found = None if self._process is None else cpu_s(self._process.pid)
        return None if found is None else found[1]

    def _exitcode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def _died(self, why: str) -> None:
        """Forget a dead (or hung: killed) child and its jobs; the next turn starts another."""
        pid = None if self._process is None else self._process.pid
        self._end_child(graceful=False)
        self._failures += 1
        self.restarts += 1
        self._metrics.shadow_restarts.inc()
        with self._lock:
            lost, self._sent = list(self._sent.values()), {}
            self._changed.notify_all()
        for sent in lost:
            for variant, _, items in sent.groups:
                self._drop(variant.name, len(items))
        log.warning("shadow scorer process %s %s: %d job(s) lost, starting another",
                    pid, why, len(lost))  # fmt: skip

    def _end_child(self, *, graceful: bool) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        self._poller = None
        if conn is not None:
            if graceful:
                with contextlib.suppress(OSError, ValueError):  # a dead child
                    conn.send(None)
            conn.close()
        if process is not None:
            if not graceful:
                process.kill()
            try:
                process.wait(10.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5.0)
