"""Window features as fresh as the stream: per-key window state, updated before scoring.

`stream run --window-features` (the default) keeps, for each window view the served model
reads, the incremental state of `mlsd.features.incremental.WindowState` (the exact per-event
semantics of the batch pipeline), as `FastWindowState` (`mlsd.streaming.window_state`):
the same events per key in numpy arrays, the same floats bit for bit, a batch advanced in
a few numpy calls. Per micro-batch, in event-time order (ties by the source's tie-break,
the transaction id), each transaction first updates the state of its key, then reads its
features: a customer's second payment in one batch sees the first, and every payment
counts itself, as `get_training_set` does. The values (`rows`, one matrix in the batch's
order) go

- to the online store, for HTTP serving: one write per batch, or with `defer_write`
  (the processor) one write per commit for all its batches, before their decisions go
  out (merged, a key's newest row wins: a customer or a terminal paying in several of
  those batches is written once, and their rows touch each page of the table once:
  2 x 8 batches of 256 random keys cost 4.4-7.0 µs a payment against 11.3-13.9 written
  batch by batch, 2026-12-03),
- to the model: the processor's input matrix (`mlsd.streaming.assembly`), or the
  pipeline's assembler as provided features (`mlsd.inference.provided`, `values`): the
  model's inputs are the state's values, not a store read one payment behind.

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
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from mlsd.data import schema
from mlsd.data.transaction import Transaction
from mlsd.errors import IntegrityError, NotFoundError, ValidationError
from mlsd.features import MISSING_VALUE
from mlsd.features.definitions import FeatureView
from mlsd.features.online import WriteBatch
from mlsd.features.store import FeatureStore
from mlsd.features.vectors import STATES, keyed_values, to_us
from mlsd.predlog import PredictionLog
from mlsd.streaming.codec import TransactionColumns, decode_batch
from mlsd.streaming.log import EventLog
from mlsd.streaming.window_state import FastWindowState

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
        self._batch = TransactionColumns.of(())
        self._lookup: dict[tuple[int, int, int, int], int] | None = None
        #: The last batch's rows (in its order, `features` order, missing values filled) and
        #: which were missing; which views' values came from the online store instead
        self.rows = np.zeros((0, len(self._features)))
        self._missing = np.zeros((0, len(self._features)), dtype=bool)
        self._from_state = np.zeros((0, len(self.served)), dtype=bool)
        #: per view read from the online store: its status dict by state, and each of
        #: those rows' state (an index into `STATES`)
        self._statuses: dict[int, tuple[dict[str, dict[str, str]], np.ndarray]] = {}
        self._latest = 0
        #: rows `prepare(defer_write=True)` computed and `write_deferred` has not written
        self._deferred: list[WriteBatch] = []
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
        if self._lookup is None:
            self._lookup = {}
            b = self._batch
            for i, ident in enumerate(
                zip(b.customer_id.tolist(), b.terminal_id.tolist(), b.time_us.tolist(), strict=True)
            ):
                k = 0
                while (*ident, k) in self._lookup:
                    k += 1
                self._lookup[(*ident, k)] = i
        out = np.full((len(requests), len(self._features)), MISSING_VALUE, dtype=np.float64)
        statuses: list[dict[str, str]] = []
        seen: dict[tuple[int, int, int], int] = {}
        missing = dict.fromkeys(self._features, "missing")
        for i, (c, m, t) in enumerate(requests):
            k = seen.get((c, m, t), 0)
            seen[(c, m, t)] = k + 1
            row = self._lookup.get((c, m, t, k))
            if row is None:
                statuses.append(missing)
                continue
            out[i] = self.rows[row]
            statuses.append(self._status(row))
        return out, statuses

    def _status(self, row: int) -> dict[str, str]:
        """The status of each feature of one row of the last batch."""
        status = dict.fromkeys(self._features, "present")
        for j, (by_state, states) in self._statuses.items():  # views read from the store
            if not self._from_state[row, j]:  # its rows read there, in batch order
                code = states[int(np.count_nonzero(~self._from_state[:row, j]))]
                status.update(by_state[STATES[code]])
        for c in np.flatnonzero(self._missing[row]).tolist():
            status[self._features[c]] = "missing"
        return status

    # per batch -------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether any view the model reads is served from state."""
        return bool(self.served)

    def prepare(
        self, txs: Sequence[Transaction] | TransactionColumns, *, defer_write: bool = False
    ) -> int:
        """Update the state with a batch (in event-time order, ties by transaction id),
        compute each payment's features, write them to the online store (`defer_write`:
        keep them for `write_deferred`); `rows` (and `values`) then serve them. The rows
        written or kept."""
        batch = txs if isinstance(txs, TransactionColumns) else TransactionColumns.of(txs)
        n = len(batch)
        self._batch = batch
        self._lookup = None
        self.rows = np.full((n, len(self._features)), MISSING_VALUE, dtype=np.float64)
        self._missing = np.ones((n, len(self._features)), dtype=bool)
        self._from_state = np.zeros((n, len(self.served)), dtype=bool)
        self._statuses = {}
        if not self.served or n == 0:
            return 0
        order = np.lexsort((batch.transaction_id, batch.time_us))
        ordered = batch.take(order)
        widths = [len(s.view.features) for s in self.served]
        rows = np.full((n, sum(widths)), np.nan)
        from_state = np.zeros((n, len(self.served)), dtype=bool)
        col = 0
        for j, s in enumerate(self.served):
            if s.live:
                got = self._advance_live(s, ordered)
                mine = order
            else:  # history only: read while it covers the payment's windows
                exact = (
                    np.zeros(n, dtype=bool)
                    if s.watermark is None
                    else ordered.time_us - s.min_delay_us <= s.watermark
                )
                picked = np.flatnonzero(exact)
                part = ordered.take(picked)
                got = s.state.advance(
                    _column(part, s.state.key), part.time_us,
                    np.zeros((len(part), len(s.state.columns))), np.zeros(len(part), dtype=bool),
                )  # fmt: skip
                mine = order[picked]
            rows[mine, col : col + widths[j]] = got
            from_state[mine, j] = True
            col += widths[j]
        self._latest = max(self._latest, int(batch.time_us.max()))
        self._prune()
        self._fallback(batch, rows, from_state, widths)
        fresh = self._fresh(batch, rows, from_state, widths)
        if defer_write:
            self._deferred += fresh
        elif fresh:
            self.store.online.write(fresh)
        bad = ~np.isfinite(rows)
        self.rows = np.where(bad, MISSING_VALUE, rows)
        self._missing = bad
        self._from_state = from_state
        return sum(len(b.keys) for b in fresh)

    def write_deferred(self, view: str | None = None) -> int:
        """Write the rows `prepare(defer_write=True)` kept (only `view`'s, if named), in one
        write, a view's batches merged (the online store keeps a key's newest row); the
        rows written. Raises UnavailableError if the store is down: the rows stay kept."""
        mine = [b for b in self._deferred if view is None or b.view == view]
        if not mine:
            return 0
        merged = []
        for name in dict.fromkeys(b.view for b in mine):
            parts = [b for b in mine if b.view == name]
            merged.append(
                WriteBatch(
                    name,
                    parts[0].version,
                    np.concatenate([b.keys for b in parts]),
                    np.concatenate([b.event_us for b in parts]),
                    np.concatenate([b.created_us for b in parts]),
                    np.concatenate([b.values for b in parts]),
                )
            )
        self.store.online.write(merged)
        self._deferred = [b for b in self._deferred if view is not None and b.view != view]
        return sum(len(b.keys) for b in mine)

    def _advance_live(self, s: _Served, ordered: TransactionColumns) -> np.ndarray:
        """The batch (in processing order) into a live view's state, after the held-back
        decided events of its keys that come at or before them; each payment's values."""
        keys = _column(ordered, s.state.key)
        ids, times = ordered.transaction_id, ordered.time_us
        rows = np.column_stack([_column(ordered, c).astype(np.float64) for c in s.state.columns])
        rows = rows.reshape(len(ordered), len(s.state.columns))
        reads = np.arange(len(ordered))
        if self._held:
            keys, ids, times, rows, reads = self._with_held(s, keys, ids, times, rows)
        # an id's first occurrence in the batch is inserted, unless the state has it already
        first = np.zeros(len(ids), dtype=bool)
        first[np.unique(ids, return_index=True)[1]] = True
        insert = first & ~np.fromiter(map(s.seen.__contains__, ids.tolist()), bool, len(ids))
        s.seen.update(zip(ids[insert].tolist(), times[insert].tolist(), strict=True))
        return s.state.advance(keys, times, rows, insert)[reads]

    def _with_held(
        self, s: _Served, keys: np.ndarray, ids: np.ndarray, times: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The batch with the held-back events that its keys' payments release (those at or
        before the key's last payment of the batch), merged in (time, id) order, held ones
        first on a tie; and where the batch's own payments are in it."""
        # each key's last payment of the batch by (time, id): sorted by key, time, id
        by = np.lexsort((ids, times, keys))
        ends = np.r_[keys[by][1:] != keys[by][:-1], True] if len(by) else np.zeros(0, bool)
        last = by[ends]
        extra: list[tuple[int, int, int, list[float]]] = []
        for k, t, i in zip(keys[last].tolist(), times[last].tolist(), ids[last].tolist(),
                           strict=True):  # fmt: skip
            held = self._held.get((id(s), k))
            if not held:
                continue
            upto = (t, i)
            cut = bisect.bisect_right(held, upto, key=lambda h: (h[0], h[1]))
            for t, ident, ev in held[:cut]:
                extra.append((k, t, ident, [float(ev[c]) for c in s.state.columns]))
            del held[:cut]
        if not extra:
            return keys, ids, times, rows, np.arange(len(keys))
        all_keys = np.r_[keys, np.array([e[0] for e in extra], dtype=np.int64)]
        all_times = np.r_[times, np.array([e[1] for e in extra], dtype=np.int64)]
        all_ids = np.r_[ids, np.array([e[2] for e in extra], dtype=np.int64)]
        all_rows = np.vstack([rows, np.array([e[3] for e in extra], dtype=np.float64)])
        own = np.r_[np.ones(len(keys), dtype=np.int64), np.zeros(len(extra), dtype=np.int64)]
        order = np.lexsort((own, all_ids, all_times))
        where = np.empty(len(order), dtype=np.int64)
        where[order] = np.arange(len(order))
        return (
            all_keys[order], all_ids[order], all_times[order], all_rows[order],
            where[: len(keys)],
        )  # fmt: skip

    def _prune(self) -> None:
        """Forget ids no window can reach any more (they would be dropped as late)."""
        for s in self.served:
            if len(s.seen) >= s.prune_at:  # amortized: at twice what the last prune kept
                horizon = self._latest - s.state.span
                s.seen = {k: t for k, t in s.seen.items() if t > horizon}
                s.prune_at = max(200_000, 2 * len(s.seen))

    def _fallback(
        self,
        batch: TransactionColumns,
        rows: np.ndarray,
        from_state: np.ndarray,
        widths: list[int],
    ) -> None:
        """Delayed views past their history: the online store's values, in one read of
        the batch's keys as columns (`keyed_values`: no request dict or status dict per
        row; the values `online_vectors` gives, float32 as served)."""
        col = 0
        for j, s in enumerate(self.served):
            need = np.flatnonzero(~from_state[:, j])
            if len(need):
                self.write_deferred(s.view.name)  # the read sees every earlier batch's rows
                part = batch.take(need)
                plan = self.store.vector_plan(s.view.features)
                keys = {schema.CUSTOMER_ID: part.customer_id, schema.TERMINAL_ID: part.terminal_id}
                found, states = keyed_values(plan, self.store.online, keys, part.time_us, math.nan)
                rows[need, col : col + widths[j]] = found.astype(np.float64)
                self._statuses[j] = (plan.views[0].statuses, states[:, 0])
                self.fallback_rows += len(need)
            col += widths[j]

    def _fresh(
        self, batch: TransactionColumns, rows: np.ndarray, from_state: np.ndarray, widths: list[int]
    ) -> list[WriteBatch]:
        """The state's rows, a write per view, for the online store (newer wins there:
        replays are harmless)."""
        created = to_us_now()
        batches = []
        col = 0
        for j, s in enumerate(self.served):
            mine = np.flatnonzero(from_state[:, j])
            if len(mine):
                keys = _column(batch, s.state.key)[mine]
                times = batch.time_us[mine]
                values = np.ascontiguousarray(rows[mine, col : col + widths[j]], np.float64)
                stamps = np.full(len(mine), created, np.int64)
                batches.append(WriteBatch(s.view.name, s.view.version, keys, times, stamps, values))
            col += widths[j]
        return batches

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
                for tx in decode_batch(page).transactions:  # what does not decode: skipped
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


def _column(batch: TransactionColumns, name: str) -> np.ndarray:
    """The batch's column of a source column name (`EVENT_COLUMNS`)."""
    columns = {
        schema.TRANSACTION_ID: batch.transaction_id, schema.CUSTOMER_ID: batch.customer_id,
        schema.TERMINAL_ID: batch.terminal_id, schema.TX_DATETIME: batch.time_us,
        schema.TX_AMOUNT: batch.amount,
    }  # fmt: skip
    if name not in columns:
        raise ValidationError(f"a transaction event has no column {name!r}", field=name)
    return columns[name]


def to_us_now() -> int:
    """Now, µs since the epoch."""
    return time.time_ns() // 1000
