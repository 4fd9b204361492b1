"""The prediction log as a scoring observer: one record per scored row, every entry point.

Each record names its request, the entry point (`score`, `v2`, `job`, `stream`, `batch`),
the variant and version that answered, the feature values the model saw, score, decision,
threshold, latency, and, for raw transactions, the transaction and its entity keys, so
offline comparison, drift and audits need nothing else. Critical: a request whose records
cannot be appended fails rather than answering without a trace.

On the event loop the records of one loop tick go in together (`observe_soon`): every
request the loop finishes scoring in one pass over its ready callbacks (a micro-batch's
answers resume together) joins the tick's `RecordBlock`, appended (so journaled: one
frame, `mlsd.predlog.journal`) by one callback at the end of the tick; each request
awaits that append before it answers, so the journal still holds every answered record.
One append per tick instead of one per request: the per-record Python (a record object,
its journal entry, its Arrow conversion) was most of what the log cost a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from mlsd.inference.observers import ScoredBatch
from mlsd.predlog.block import RecordBlock, TxColumns
from mlsd.predlog.record import PredictionRecord


class RecordSink(Protocol):
    """Where records go (`mlsd.predlog.PredictionLog` is one)."""

    def append(self, records: Sequence[PredictionRecord]) -> object:
        """Take records; durable later (or now, as the log promises)."""
        ...


def row_ids(batch: ScoredBatch) -> list[str]:
    """The log id of each row: given ids, else the request id (one row) or `{request}:{tx}`."""
    request = batch.request
    if request.row_ids is not None:
        return list(request.row_ids)
    rid = request.request_id
    n = request.size
    if n == 1:
        return [rid]
    if request.transactions:
        return [f"{rid}:{tx.transaction_id}" for tx in request.transactions]
    return [f"{rid}:{i}" for i in range(n)]


class PredictionLogObserver:
    """Appends every scored batch to the prediction log: at once (`observe`, any thread),
    or with the rest of its event-loop tick (`observe_soon`, the loop's requests)."""

    def __init__(self, sink: RecordSink) -> None:
        self.sink = sink
        self._tick: list[ScoredBatch] = []
        self._appended: asyncio.Future[None] | None = None

    def observe(self, batch: ScoredBatch) -> None:
        """Append the batch's records now."""
        logged = batch.request.logged
        if logged:  # a job run again: rows its interrupted run logged are not logged twice
            variant = batch.variant
            block = tick_blocks([batch], datetime.now(UTC))[0]
            records = [r for r in block.records() if (r.request_id, variant) not in logged]
            if records:
                self.sink.append(records)
            return
        for block in tick_blocks([batch], datetime.now(UTC)):
            self.sink.append(block)

    def observe_soon(self, batch: ScoredBatch) -> Awaitable[None]:
        """On the event loop: the batch joins this tick's append; await the result before
        answering (it raises what the append raised)."""
        if batch.request.logged:  # a re-run's filter: rare, and not on the loop's hot path
            self.observe(batch)
            return _DONE
        appended = self._appended
        if appended is None:
            loop = asyncio.get_running_loop()
            appended = self._appended = loop.create_future()
            loop.call_soon(self._append_tick)  # after the callbacks ready now: this tick
        self._tick.append(batch)
        return appended

    def _append_tick(self) -> None:
        batches, self._tick = self._tick, []
        appended, self._appended = self._appended, None
        if appended is None:  # pragma: no cover - scheduled only with a future
            return
        try:
            for block in tick_blocks(batches, datetime.now(UTC)):
                self.sink.append(block)
        except Exception as exc:  # noqa: BLE001 - handed to every request of the tick
            appended.set_exception(exc)
            return
        appended.set_result(None)


class _Done:
    """An awaitable that is done: what `observe_soon` returns when it appended already."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator that returns at once


_DONE = _Done()


def tick_blocks(batches: Sequence[ScoredBatch], ts: datetime) -> list[RecordBlock]:
    """The batches' rows as blocks, one per context (model, variant, entry point, with or
    without transactions), in the order each context first appears."""
    groups: dict[tuple[Any, ...], list[ScoredBatch]] = {}
    for batch in batches:
        model = batch.model
        key = (model.key, model.threshold, id(model.feature_names), batch.variant,
               batch.request.entry, not batch.request.transactions)  # fmt: skip
        found = groups.get(key)
        if found is None:
            groups[key] = [batch]
        else:
            found.append(batch)
    return [_block(group, ts) for group in groups.values()]


def _block(batches: list[ScoredBatch], ts: datetime) -> RecordBlock:
    first = batches[0]
    model = first.model
    ids: list[str] = []
    decisions: list[str] = []
    latency: list[float] = []
    degraded: list[bool] = []
    for batch in batches:
        n = len(batch.decisions)
        ids += row_ids(batch)
        decisions += batch.decisions
        latency += [batch.latency_s * 1000.0] * n
        degraded += [batch.degraded] * n
    columns: TxColumns | None = None
    if first.request.transactions:
        txs = [tx for batch in batches for tx in batch.request.transactions]
        columns = (
            [tx.transaction_id for tx in txs],
            [tx.customer_id for tx in txs],
            [tx.terminal_id for tx in txs],
            [tx.timestamp for tx in txs],
        )
    if len(batches) == 1:
        values, scores = first.values, first.scores
    else:
        values = np.concatenate([b.values for b in batches])
        scores = np.concatenate([b.scores for b in batches])
    return RecordBlock(
        ids, ts, model.name, str(model.version), values, scores, decisions, model.threshold,
        latency, degraded, model.feature_names, first.request.entry, first.variant, columns,
    )  # fmt: skip
