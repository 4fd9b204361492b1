"""The shadow scorer process: scores shadow batches and logs them, off the server's GIL.

Started by `mlsd.inference.shadow_process` as `python -m mlsd.inference.shadow_child FD`
(FD: its end of a socket pair, spoken to with multiprocessing's `Connection`). It opens the registry
and the prediction log the settings name, loads each shadow version it is asked for from
the registry (versions are immutable, their artifacts sha256-checked: it scores exactly
what the server loaded), scores the primary's feature rows it is sent, writes the shadow's
prediction-log records itself with `PredictionLogObserver` (the same records as in the
server: variant `{rollout}:shadow`, same request ids; the log takes several writer
processes, each with its own journal), hands each variant's scored batches to the twins of
the server's observers (`mlsd.inference.observers.ShadowTwin`: metrics counts, live drift's
bins; built from the "module:callable" each names) and answers with the scores and the
twins' summaries.

It runs only on CPU the server leaves idle (`SCHED_IDLE` on Linux, else nice 19): a
shadow never takes CPU the answers need; a child that falls behind (a saturated server)
fills the server's bounded queue, and shadows are dropped and counted, the answers never
wait. It ignores
Ctrl-C (the server stops it), and exits when the server closes its pipe or dies.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pickle
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from mlsd.data.transaction import Transaction
from mlsd.errors import MlsdError
from mlsd.inference.observers import (
    Entry,
    ScoredBatch,
    ScoringRequest,
    ShadowTwin,
    TwinSpec,
    decide,
)
from mlsd.inference.spec import LoadedModel
from mlsd.settings import Settings

log = logging.getLogger(__name__)

#: Shadow versions the child keeps loaded at most.
MAX_VERSIONS = 4
#: The child's first message once it can score.
READY = "ready"
#: A variant's requests on the wire, as columns (one list each, request order): ids,
#: entry points, row ids (or None), rows, whether the rows are given (V2 tensors), the
#: `degraded` flags, how many transactions each has; then their transactions, flattened:
#: ids, customers, terminals, amounts, times (µs since the epoch when every one is in UTC,
#: else the datetimes). Columns of ints, strings and floats, not a tuple per request (one
#: function call and tuple less a request on the courier); a UTC datetime costs ~0.9 µs to
#: pickle, its count of µs ~0.4 to compute (idle core).
Requests = tuple[
    list[str], list[Entry], list[Sequence[str] | None], list[int], list[bool], list[bool],
    list[int], list[int], list[int], list[int], list[float], list[int] | list[datetime],
]  # fmt: skip
#: One variant's shadows in a job: variant name, model name, version, the primaries' rows
#: (concatenated, request order), the requests.
Group = tuple[str, str, int, np.ndarray, Requests]
#: The server's observers with a twin here, as of a job: (twin id, what builds it, sent
#: once to each child, then None).
Twins = list[tuple[int, TwinSpec | None]]
#: A job: its sequence number, its groups and the twins; None asks the child to stop.
Job = tuple[int, list[Group], Twins]
#: A group's answer: scores (rows of the group), which requests were scored, the scoring
#: latency of the group (s), the model call's seconds, the error of the failed requests,
#: each twin's summary of the scored ones (by twin id; absent: that observer is told of
#: each shadow instead).
GroupResult = tuple[np.ndarray, np.ndarray, float, float, str | None, dict[int, Any]]
#: The answer to a job: its sequence number and one result per group.
Answer = tuple[int, list[GroupResult]]


#: The child's niceness where the OS has no idle scheduling class.
NICE = 19


#: Where the wire's times count from, and in what.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_wire(requests: Sequence[ScoringRequest], primaries: Sequence[ScoredBatch]) -> Requests:
    """What the child needs of `requests` (answered by `primaries`) to log them, as columns.

    A UTC time goes as its exact count of microseconds (pickling a datetime costs ~0.9 µs,
    this ~0.4); a list holding any other (another zone, naive) goes as the datetimes, so
    the child logs exactly what the server saw.
    """
    per = [r.transactions for r in requests]
    txs = [t for ts in per for t in ts]
    stamps: list[datetime] = [t.timestamp for t in txs]
    times: list[int] | list[datetime] = stamps
    if stamps and all(s.tzinfo is UTC for s in stamps):
        times = [(s - EPOCH) // _US for s in stamps]
    return (
        [r.request_id for r in requests], [r.entry for r in requests],
        [r.row_ids for r in requests], [len(p.values) for p in primaries],
        [r.values is not None for r in requests], [p.degraded for p in primaries],
        [len(ts) for ts in per], [t.transaction_id for t in txs], [t.customer_id for t in txs],
        [t.terminal_id for t in txs], [t.amount for t in txs], times,
    )  # fmt: skip


def from_wire(wire: Requests, values: np.ndarray) -> list[tuple[ScoringRequest, bool]]:
    """The requests again, each with its `degraded` flag (given rows: its slice of `values`,
    the job's matrix)."""
    rids, entries, row_ids, rows, given, degraded, counts, ids, customers, terminals = wire[:10]
    amounts, times = wire[10:]
    n = len(rids)
    if any(len(c) != n for c in (entries, row_ids, rows, given, degraded, counts)):
        raise ValueError("a request column of another length than the request ids")
    if sum(rows) != len(values):
        raise ValueError(f"{sum(rows)} rows named, {len(values)} sent")
    if any(len(c) != sum(counts) for c in (ids, customers, terminals, amounts, times)):
        raise ValueError("a transaction column of another length than the counts")
    when = [EPOCH + _US * t if isinstance(t, int) else t for t in times]
    txs = [Transaction(*t) for t in zip(ids, customers, terminals, amounts, when, strict=True)]
    out: list[tuple[ScoringRequest, bool]] = []
    row = tx = 0
    for i in range(n):
        size, k = rows[i], counts[i]
        rid, entry, own, part = rids[i], entries[i], row_ids[i], txs[tx : tx + k]
        rows_of = values[row : row + size] if given[i] else None
        out.append((ScoringRequest(rid, entry, part, rows_of, row_ids=own), degraded[i]))
        row, tx = row + size, tx + k
    return out


def lower_priority() -> None:
    """Run this process (and the threads it starts later) only on CPU the server leaves idle.

    `SCHED_IDLE` (Linux): the server's threads preempt it at once. Measured over HTTP (100 %
    shadow, the child on the server's core): champion p99 at half rate −0.1 % (load 1.5,
    1.7 % of shadows dropped) and +38 % (load 3, none dropped) with `SCHED_IDLE`, +55 % and
    +89 % at nice +5 in two noisier runs, +90 % to +152 % with the shadow thread. At the
    maximum rate, where the server leaves no idle CPU, an idle-class child drops nearly
    every shadow (counted).
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(NICE)


class ShadowScorer:
    """The child's state: the registry, the loaded shadow versions, the log's observer."""

    def __init__(self, settings: Settings, log_predictions: bool) -> None:
        from mlsd.inference.host import ModelHost
        from mlsd.inference.log_observer import PredictionLogObserver
        from mlsd.predlog import make_prediction_log
        from mlsd.registry import Registry

        self.registry = Registry.open(settings)
        self.host = ModelHost(self.registry)
        self.log = make_prediction_log(settings) if log_predictions else None
        self.observer = PredictionLogObserver(self.log) if self.log is not None else None
        self._log_failed = False
        self._used: dict[tuple[str, int], None] = {}  # loaded versions, least recent first
        #: The server's observers' twins, by twin id (`mlsd.inference.observers.ShadowTwin`).
        self.twins: dict[int, ShadowTwin] = {}
        self._twin_failed: set[int] = set()

    def model(self, name: str, version: int) -> LoadedModel:
        """The version, loaded from the registry once; beyond `MAX_VERSIONS` the one asked
        for least recently is unloaded (a long-running server sees many rollouts)."""
        key = (name, version)
        self._used[key] = self._used.pop(key, None)
        try:
            return self.host.get(name, version=version)
        except MlsdError:
            model = self.host.load(f"{name}/{version}")
        while len(self._used) > MAX_VERSIONS:
            old_name, old_version = next(iter(self._used))
            del self._used[(old_name, old_version)]
            with contextlib.suppress(MlsdError):
                self.host.unload(old_name, version=old_version)
        return model

    def score(self, job: Job) -> Answer:
        """Score and log each group of a job, sum it up for the twins; a failure is
        reported, never raised."""
        seq, groups, twins = job
        self._configure(twins)
        return seq, [self._group(*group) for group in groups]

    def _configure(self, twins: Twins) -> None:
        """Build the twins new to this child, forget those the server no longer has."""
        for tid, spec in twins:
            if spec is None or tid in self.twins or tid in self._twin_failed:
                continue
            where, args = spec
            module, _, name = where.partition(":")
            try:
                self.twins[tid] = getattr(importlib.import_module(module), name)(
                    self.registry, *args
                )
            except Exception:  # its observer is told of each shadow instead
                log.exception("shadow twin %s not built", where)
                self._twin_failed.add(tid)
        listed = {tid for tid, _ in twins}
        for tid in [t for t in self.twins if t not in listed]:
            del self.twins[tid]

    def _summaries(self, batches: list[ScoredBatch]) -> dict[int, Any]:
        out: dict[int, Any] = {}
        for tid, twin in self.twins.items():
            try:
                out[tid] = twin.summarize(batches)
            except Exception:  # no summary: its observer is told of each shadow instead
                if tid not in self._twin_failed:  # once
                    self._twin_failed.add(tid)
                    log.exception("shadow twin %r failed", twin)
        return out

    def _group(
        self, variant: str, name: str, version: int, values: np.ndarray, wire: Requests
    ) -> GroupResult:
        started = time.perf_counter()
        ok = np.zeros(len(wire[0]), dtype=bool)
        try:
            requests = from_wire(wire, values)
        except (ValueError, TypeError) as exc:  # a server of another version: none scored
            return np.zeros(len(values)), ok, 0.0, 0.0, f"malformed shadow job: {exc}", {}
        sizes = wire[3]
        try:
            model = self.model(name, version)
        except Exception as exc:  # noqa: BLE001 - reported to the server, per request
            failed = f"cannot load {name}/{version}: {exc!r}"
            return np.zeros(len(values)), ok, 0.0, 0.0, failed, {}
        error: str | None = None
        try:
            scores = np.asarray(model.predict(values), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - scored again request by request
            scores, error = self._one_by_one(model, values, sizes), repr(exc)
        model_s = time.perf_counter() - started
        end = 0
        batches: list[ScoredBatch] = []
        for i, ((request, flag), size) in enumerate(zip(requests, sizes, strict=True)):
            start, end = end, end + size
            part = scores[start:end]
            try:
                decisions = decide(part.tolist(), model.threshold)
            except Exception as exc:  # noqa: BLE001 - a NaN score: its call failed
                error = error or repr(exc)
                continue
            ok[i] = True
            batch = ScoredBatch(
                request, variant, "shadow", model, values[start:end], part, decisions,
                np.zeros(len(part), dtype=bool), [], flag, time.perf_counter() - started,
            )  # fmt: skip
            self._log(batch)
            batches.append(batch)
        summaries = self._summaries(batches) if batches else {}
        return scores, ok, time.perf_counter() - started, model_s, error, summaries

    @staticmethod
    def _one_by_one(model: LoadedModel, values: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
        """Each request's scores on its own (NaN where its call fails: it is not logged)."""
        scores = np.full(len(values), np.nan)
        start = 0
        for size in sizes:
            end = start + size
            with contextlib.suppress(Exception):  # NaN marks the failure
                scores[start:end] = model.predict(values[start:end])
            start = end
        return scores

    def _log(self, batch: ScoredBatch) -> None:
        if self.observer is None:
            return
        try:
            self.observer.observe(batch)
        except MlsdError as exc:
            if not self._log_failed:  # once: the log says the rest in its own stats
                self._log_failed = True
                log.error("shadow records not logged: %s", exc.message)

    def close(self) -> None:
        """Write the records still buffered, release the registry."""
        if self.log is not None:
            self.log.close()
        self.registry.close()


def main(conn: Connection) -> None:
    """Serve jobs from `conn` until told to stop or orphaned; the first message is the
    settings and whether to log."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us
    lower_priority()
    try:
        settings, log_predictions = conn.recv()
    except (EOFError, OSError):
        return
    scorer = ShadowScorer(settings, log_predictions)
    try:
        conn.send(READY)
        while True:
            try:  # jobs and answers as plain pickles (protocol 5), not multiprocessing's
                job: Any = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):  # the server is gone
                return
            if job is None:
                return
            try:
                conn.send_bytes(pickle.dumps(scorer.score(job), protocol=pickle.HIGHEST_PROTOCOL))
            except OSError:  # the server is gone
                return
    finally:
        scorer.close()


if __name__ == "__main__":
    main(Connection(int(sys.argv[1])))
