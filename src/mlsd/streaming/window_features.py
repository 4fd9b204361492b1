"""Window features as fresh as the stream: per-key window state, updated before scoring.

`stream run --window-features` (the default) keeps, for each window view the served model
reads, the incremental state of `mlsd.features.incremental.WindowState` (the exact per-event
semantics of the batch pipeline), as `FastWindowState`: the same events per key in a
float64 array, the same floats bit for bit. Per micro-batch, in event-time order (ties by the
source's tie-break, the transaction id), each transaction first updates the state of its
key, then reads its features: a customer's second payment in one batch sees the first,
and every payment counts itself, as `get_training_set` does. The values go

- to the online store (one write per batch, before scoring: HTTP serving sees them too),
- to the scoring pipeline as provided features (`mlsd.inference.provided`): the model's
  inputs are the state's values, not a store read one payment behind.

Which views. A window view over the transactions whose columns the transaction event
carries (customer spending: count and amount) is *live*: every event updates it. A view
needing a column the event lacks (terminal risk reads `TX_FRAUD`, a label known days
later) is *delayed*: its state holds the history only, and is served while every window it
reads ends at or before the history's end (`at - min(delay) <= watermark`: the 7-day delay
of the terminal risk covers the first 7 days of stream); after that, its values come from
the online store as without the option.

Restart (kill -9 included). The state is rebuilt on start from

1. the history: the view's source events (the dataset the offline table was built from)
   up to the online store's materialization watermark of the view, the span back;
2. the stream: the input topic's events already decided, i.e. whose record `tx-{id}` is
   in the prediction log (durable before any commit). They are held back per key and
   inserted only when an event of that key at or after them is processed, so the state
   never holds a key's events later than the one being scored: a re-delivered batch
   (decided, not committed) meets exactly the state it met the first time.

A transaction id already in the state is not inserted twice (re-delivery, or an event in
both the history and the stream). Known limits: an event dead-lettered after it updated
the state (its scoring failed) counts in the live state and not in a rebuilt one; with
several processors in a group, each rebuilds from every partition but updates only with
the events it consumes (a partition moved to it in a rebalance misses the other member's
updates since its start).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from mlsd.data import schema
from mlsd.data.transaction import Transaction
from mlsd.errors import IntegrityError, NotFoundError, ValidationError
from mlsd.features import MISSING_VALUE
from mlsd.features.aggregations import window_value
from mlsd.features.definitions import FeatureView
from mlsd.features.incremental import WindowState, event_us
from mlsd.features.online import WriteBatch
from mlsd.features.store import FeatureStore
from mlsd.features.vectors import to_us
from mlsd.predlog import PredictionLog
from mlsd.streaming.codec import decode_transaction
from mlsd.streaming.log import EventLog


class FastWindowState:
    """`WindowState`'s semantics, faster: the same events per key, kept as a float64 array
    per key (one slice per window instead of a list and an array per aggregation), the
    same `window_value` on the same values in the same order, so the same floats, bit for
    bit (`tests/unit/streaming/test_window_features.py` holds it to the reference)."""

    def __init__(self, view: FeatureView) -> None:
        ref = WindowState(view)  # the reference's checks, key, columns and span
        self.view, self.key, self.time = view, ref.key, ref.time
        self.columns, self.span = ref.columns, ref.span
        index = {c: i for i, c in enumerate(self.columns)}
        self._aggs = [
            (
                a.name,
                a.function,
                a.delay_us + a.window_us,
                a.delay_us,
                index.get(a.column or "", -1),
            )
            for a in view.aggregations
        ]
        self._derived = [(d, [(x, index.get(x, -1)) for x in d.args]) for d in view.derived]
        self._times: dict[int, list[int]] = {}
        self._rows: dict[int, np.ndarray] = {}
        self._latest: dict[int, int] = {}
        self._empty = np.zeros((0, len(self.columns)), dtype=np.float64)
        self.late_dropped = 0

    def update(self, event: Mapping[str, Any]) -> FastWindowState:
        """Add one event (a mapping with the key, the time and the view's columns)."""
        for col in (self.key, self.time, *self.columns):
            if col not in event:
                raise ValidationError(f"event lacks column {col!r}", field=col)
        key, t = int(event[self.key]), event_us(event[self.time])
        times = self._times.setdefault(key, [])
        rows = self._rows.get(key, self._empty)
        latest = max(self._latest.get(key, t), t)
        if t <= latest - self.span:
            self.late_dropped += 1
            return self
        at = bisect.bisect_right(times, t)  # after the events sharing its time: arrival order
        times.insert(at, t)
        rows = np.insert(rows, at, [float(event[c]) for c in self.columns], axis=0)
        self._latest[key] = latest
        cut = bisect.bisect_right(times, latest - self.span)  # expire: no window reaches them
        if cut:
            del times[:cut]
            rows = rows[cut:]
        self._rows[key] = rows
        return self

    def load(self, keys: np.ndarray, times: np.ndarray, rows: np.ndarray) -> None:
        """`update` with each event of a history sorted by time (ties in their order), in
        bulk, into keys the state does not hold yet: in time order nothing is late, and
        what the updates would keep is each key's events after its latest minus the span."""
        if len(keys) == 0:
            return
        if any(int(k) in self._times for k in np.unique(keys)):
            raise ValidationError("load() is for keys the state does not hold yet", field="key")
        order = np.argsort(keys, kind="stable")  # each key's events stay in time order
        keys, times, rows = keys[order], times[order], rows[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        ends = np.r_[starts[1:], len(keys)]
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            mine = times[lo:hi]
            latest = int(mine[-1])
            keep = lo + int(np.searchsorted(mine, latest - self.span, side="right"))
            key = int(keys[lo])
            self._times[key] = times[keep:hi].tolist()
            self._rows[key] = np.ascontiguousarray(rows[keep:hi], dtype=np.float64)
            self._latest[key] = latest

    def held(self, key: int) -> int:
        """How many events the state keeps for a key."""
        return len(self._times.get(int(key), ()))

    def get(self, key: int, at: Any) -> dict[str, float]:
        """The view's features for an event of `key` at `at`, from the events seen so far."""
        t = event_us(at)
        times = self._times.get(int(key), [])
        rows = self._rows.get(int(key), self._empty)
        values: dict[str, float | None] = {}
        for name, function, reach, delay, col in self._aggs:
            lo = bisect.bisect_right(times, t - reach)
            hi = bisect.bisect_right(times, t - delay)
            if function == "count":  # window_value's own rule, without building a window
                values[name] = float(hi - lo)
                continue
            window = rows[lo:hi, col] if col >= 0 else np.zeros(hi - lo)
            values[name] = window_value(function, window)
        current = bisect.bisect_right(times, t) - 1
        for d, args in self._derived:
            values[d.name] = d.value({
                x: values[x] if x in values else (None if current < 0 else float(rows[current, i]))
                for x, i in args
            })  # fmt: skip
        out: dict[str, float] = {}
        for f in self.view.features:
            v = values[f]
            out[f] = np.nan if v is None else float(v)
        return out


#: The columns a transaction event gives a view's state, by source column name.
EVENT_COLUMNS = (
    schema.TRANSACTION_ID, schema.CUSTOMER_ID, schema.TERMINAL_ID, schema.TX_DATETIME,
    schema.TX_AMOUNT,
)  # fmt: skip
_REPLAY_PAGE = 10_000

Event = dict[str, Any]


def event_of(tx: Transaction) -> Event:
    """A transaction as a view's state reads it (source column names, time in µs)."""
    return {
        schema.TRANSACTION_ID: tx.transaction_id,
        schema.CUSTOMER_ID: tx.customer_id,
        schema.TERMINAL_ID: tx.terminal_id,
        schema.TX_DATETIME: to_us(tx.timestamp),
        schema.TX_AMOUNT: tx.amount,
    }


@dataclass
class _Served:
    """One window view served from state."""

    view: FeatureView
    state: FastWindowState
    live: bool  # updated by every stream event (else: history only, while it covers)
    watermark: int | None = None  # the history's end (µs): the online store's watermark
    min_delay_us: int = 0
    #: transaction id -> event µs of what the state holds (never inserted twice)
    seen: dict[int, int] = field(default_factory=dict)
    prune_at: int = 200_000

    def exact(self, at_us: int) -> bool:
        """Whether the state gives the batch value of an event at `at_us`."""
        if self.live:
            return True
        return self.watermark is not None and at_us - self.min_delay_us <= self.watermark


@dataclass
class RebuildReport:
    """What the start-up rebuild read."""

    history: dict[str, int] = field(default_factory=dict)  # events per view
    replayed: int = 0  # events of the input topic read
    decided: int = 0  # of which decided before (held back until their key's next event)
    seconds: float = 0.0


class WindowFeatures:
    """The stream's window state for one model signature; a `ProvidedFeatures`."""

    def __init__(self, store: FeatureStore, feature_names: Sequence[str]) -> None:
        self.store = store
        self.served: list[_Served] = []
        for req in store.resolve(feature_names):
            view = req.view
            if not view.streamable or view.entity is None or view.event_source.kind != "dataset":
                continue  # the stream carries transactions: other sources are not its events
            state = FastWindowState(view)
            live = all(c in EVENT_COLUMNS for c in state.columns)
            aggs = {a.name for a in view.aggregations}
            min_delay = min(a.delay_us for a in view.aggregations)
            reads_event = any(x not in aggs for d in view.derived for x in d.args)
            if not live and (min_delay <= 0 or reads_event):
                continue  # needs the current event's unknown columns: the online store serves it
            self.served.append(_Served(view, state, live, None, min_delay))
        self._features = tuple(f for s in self.served for f in s.view.features)
        self._held: dict[tuple[int, int], list[tuple[int, int, Event]]] = {}
        self._rows: dict[tuple[int, int, int, int], tuple[np.ndarray, dict[str, str]]] = {}
        self._latest = 0
        self.fallback_rows = 0  # rows whose delayed features came from the online store
        self.rebuilt = RebuildReport()

    # ProvidedFeatures ------------------------------------------------------------------------

    @property
    def features(self) -> tuple[str, ...]:
        """Every feature of the views served from state, view by view."""
        return self._features

    def values(
        self, requests: Sequence[tuple[int, int, int]]
    ) -> tuple[np.ndarray, list[dict[str, str]]]:
        """The rows `prepare` computed for these (customer, terminal, µs) requests."""
        out = np.full((len(requests), len(self._features)), MISSING_VALUE, dtype=np.float64)
        statuses: list[dict[str, str]] = []
        seen: dict[tuple[int, int, int], int] = {}
        missing = dict.fromkeys(self._features, "missing")
        for i, (c, m, t) in enumerate(requests):
            k = seen.get((c, m, t), 0)
            seen[(c, m, t)] = k + 1
            found = self._rows.get((c, m, t, k))
            if found is None:
                statuses.append(missing)
                continue
            out[i] = found[0]
            statuses.append(found[1])
        return out, statuses

    # per batch -------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether any view the model reads is served from state."""
        return bool(self.served)

    def prepare(self, txs: Sequence[Transaction]) -> int:
        """Update the state with `txs` (event-time order), compute each one's features,
        write them to the online store; `values` then serves them. The rows written."""
        self._rows = {}
        if not self.served or not txs:
            return 0
        events = [event_of(tx) for tx in txs]
        order = sorted(range(len(txs)), key=lambda i: (events[i][schema.TX_DATETIME],
                                                       txs[i].transaction_id))  # fmt: skip
        widths = [len(s.view.features) for s in self.served]
        rows = np.full((len(txs), sum(widths)), np.nan)
        from_state = np.zeros((len(txs), len(self.served)), dtype=bool)
        for i in order:
            event = events[i]
            t = int(event[schema.TX_DATETIME])
            self._insert(event)
            col = 0
            for j, s in enumerate(self.served):
                if s.exact(t):
                    key = int(event[s.state.key])
                    got = s.state.get(key, t)
                    rows[i, col : col + widths[j]] = [got[f] for f in s.view.features]
                    from_state[i, j] = True
                col += widths[j]
        self._prune()
        statuses = self._fallback(txs, rows, from_state, widths)
        written = self._write(events, rows, from_state, widths)
        occurrence: dict[tuple[int, int, int], int] = {}
        for i, tx in enumerate(txs):
            ident = (tx.customer_id, tx.terminal_id, int(events[i][schema.TX_DATETIME]))
            k = occurrence.get(ident, 0)
            occurrence[ident] = k + 1
            row = rows[i]
            status = statuses[i]
            if not np.isfinite(row).all():
                bad = ~np.isfinite(row)
                status = {**status, **{self._features[c]: "missing" for c in np.flatnonzero(bad)}}
                row = np.where(bad, MISSING_VALUE, row)
            self._rows[(*ident, k)] = (row, status)
        return written

    def _insert(self, event: Event) -> None:
        """The event into every live state (once per transaction id), after the held-back
        decided events of its key that come at or before it."""
        t, ident = int(event[schema.TX_DATETIME]), int(event[schema.TRANSACTION_ID])
        for s in self.served:
            if not s.live:
                continue
            held = self._held.get((id(s), int(event[s.state.key])))
            if held:
                upto = bisect.bisect_right(held, (t, ident), key=lambda h: (h[0], h[1]))
                for other_t, other, ev in held[:upto]:
                    if other not in s.seen:
                        s.state.update(ev)
                        s.seen[other] = other_t
                del held[:upto]
            if ident not in s.seen:
                s.state.update(event)
                s.seen[ident] = t
        self._latest = max(self._latest, t)

    def _prune(self) -> None:
        """Forget ids no window can reach any more (they would be dropped as late)."""
        for s in self.served:
            if len(s.seen) >= s.prune_at:  # amortized: at twice what the last prune kept
                horizon = self._latest - s.state.span
                s.seen = {k: t for k, t in s.seen.items() if t > horizon}
                s.prune_at = max(200_000, 2 * len(s.seen))

    def _fallback(
        self,
        txs: Sequence[Transaction],
        rows: np.ndarray,
        from_state: np.ndarray,
        widths: list[int],
    ) -> list[dict[str, str]]:
        """Delayed views past their history: the online store's values, in one read."""
        statuses = [dict.fromkeys(self._features, "present") for _ in txs]
        col = 0
        for j, s in enumerate(self.served):
            need = np.flatnonzero(~from_state[:, j])
            if len(need):
                requests = [
                    {schema.CUSTOMER_ID: txs[i].customer_id, schema.TERMINAL_ID: txs[i].terminal_id,
                     schema.TX_DATETIME: txs[i].timestamp}
                    for i in need.tolist()
                ]  # fmt: skip
                found = self.store.online_vectors(requests, s.view.features)
                rows[need, col : col + widths[j]] = np.asarray(found.values, dtype=np.float64)
                for i, st in zip(need.tolist(), found.status, strict=True):
                    statuses[i].update(st)
                self.fallback_rows += len(need)
            col += widths[j]
        return statuses

    def _write(
        self, events: list[Event], rows: np.ndarray, from_state: np.ndarray, widths: list[int]
    ) -> int:
        """The state's rows into the online store (newer wins there: replays are harmless)."""
        created = to_us_now()
        batches = []
        col = 0
        for j, s in enumerate(self.served):
            mine = np.flatnonzero(from_state[:, j])
            if len(mine):
                keys = np.array([int(events[i][s.state.key]) for i in mine], dtype=np.int64)
                times = np.array([int(events[i][schema.TX_DATETIME]) for i in mine], np.int64)
                values = np.ascontiguousarray(rows[mine, col : col + widths[j]], np.float64)
                stamps = np.full(len(mine), created, np.int64)
                batches.append(WriteBatch(s.view.name, s.view.version, keys, times, stamps, values))
            col += widths[j]
        if batches:
            self.store.online.write(batches)
        return sum(len(b.keys) for b in batches)

    # start-up ---------------------------------------------------------------------------------

    def rebuild(self, events: EventLog, topic: str, predictions: PredictionLog) -> RebuildReport:
        """The state as it was: history up to each view's watermark, then the topic's
        decided events, held back per key (see the module's docstring)."""
        started = time.perf_counter()
        report = RebuildReport()
        for s in self.served:
            report.history[s.view.name] = self._history(s)
        decided = {rid[3:] for rid, _ in predictions.logged_ids("tx-")}
        replayed: list[Event] = []
        try:
            partitions = events.partitions(topic)
        except NotFoundError:  # no topic yet: nothing decided from it
            partitions = 0
        for p in range(partitions):
            offset = 0
            while True:
                page = events.replay(topic, p, offset=offset, limit=_REPLAY_PAGE)
                offset = page[-1].offset + 1 if page else offset
                report.replayed += len(page)
                for item in page:
                    try:
                        tx = decode_transaction(item.value)
                    except ValidationError:
                        continue
                    if str(tx.transaction_id) in decided:
                        replayed.append(event_of(tx))
                # A short page reached the partition's end. Every decided event was published
                # before `decided` was read, so it is behind that end: stop there rather than
                # chase events still being published (a slow replay, as Kafka's, never would).
                if len(page) < _REPLAY_PAGE:
                    break
        replayed.sort(key=lambda e: (e[schema.TX_DATETIME], e[schema.TRANSACTION_ID]))
        for s in self.served:
            if not s.live:
                continue
            for e in replayed:
                t, ident = int(e[schema.TX_DATETIME]), int(e[schema.TRANSACTION_ID])
                self._held.setdefault((id(s), int(e[s.state.key])), []).append((t, ident, e))
        report.decided = len(replayed)
        report.seconds = time.perf_counter() - started
        self.rebuilt = report
        return report

    def _history(self, s: _Served) -> int:
        """Load the view's source events in (watermark - span, watermark]; their count."""
        from mlsd.features.pipeline import connect, view_source_sql
        from mlsd.features.source import read_source

        mark = self.store.online.watermark(s.view.name, s.view.version)
        s.watermark = mark
        folder = self.store.offline.folder(s.view.name, s.view.version)
        if mark is None or not folder.is_dir():
            return 0  # never materialized: the online store holds nothing either
        where, _, _ = read_source(folder).rpartition("#")
        dataset = Path(where) if where else None
        src = s.view.event_source
        ts, tie = src.timestamp_field, src.tie_break
        cols = sorted({s.state.key, *s.state.columns, *([tie] if tie else [])})
        select = ", ".join(f'"{c}"' for c in cols if c != ts)
        con = connect()
        try:
            if dataset is not None and not dataset.is_dir():
                raise NotFoundError(
                    f"the history of view {s.view.name!r} is read from {dataset}, which is "
                    "gone: rebuild the offline tables (`mlsd features build DATASET`) or run "
                    "with --no-window-features",
                    field="dataset",
                )
            source = view_source_sql(con, s.view, dataset)
            frame = con.execute(
                f'SELECT {select}, epoch_us("{ts}") AS __t FROM ({source}) '
                f'WHERE "{ts}" > make_timestamptz({mark - s.state.span}) '
                f'AND "{ts}" <= make_timestamptz({mark}) '
                f"ORDER BY __t{f', {tie}' if tie else ''}"
            ).df()
        except duckdb.Error as exc:
            raise IntegrityError(
                f"the history of view {s.view.name!r} cannot be read: {exc} "
                "(run with --no-window-features to read the online store only)",
                field="dataset",
            ) from exc
        finally:
            con.close()
        times = frame["__t"].to_numpy(np.int64)
        s.state.load(
            frame[s.state.key].to_numpy(np.int64),
            times,
            frame[list(s.state.columns)].to_numpy(np.float64).reshape(len(frame), -1),
        )
        if s.live and tie == schema.TRANSACTION_ID:
            s.seen.update(zip(frame[tie].tolist(), times.tolist(), strict=True))
        if len(frame):
            self._latest = max(self._latest, int(times.max()))
        return len(frame)


def to_us_now() -> int:
    """Now, µs since the epoch."""
    return time.time_ns() // 1000
