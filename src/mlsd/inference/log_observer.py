"""The prediction log as a scoring observer: one record per scored row, every entry point.

Each record names its request, the entry point (`score`, `v2`, `job`, `stream`, `batch`),
the variant and version that answered, the feature values the model saw, score, decision, threshold,
latency, and, for raw transactions, the transaction and its entity keys, so offline
comparison, drift and audits need nothing else. Critical: a request whose records cannot be
appended fails rather than answering without a trace.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from mlsd.inference.observers import ScoredBatch
from mlsd.predlog.batch import PredictionBatch
from mlsd.predlog.record import PredictionRecord


class RecordSink(Protocol):
    """Where records go (`mlsd.predlog.PredictionLog` is one)."""

    def append(self, records: list[PredictionRecord]) -> object:
        """Take records; durable later (or now, as the log promises)."""
        ...


def columns(batch: ScoredBatch) -> PredictionBatch:
    """A scored batch as one `PredictionBatch`: the records `observe` would append."""
    model, txs = batch.model, batch.request.transactions
    return PredictionBatch(
        row_ids(batch), datetime.now(UTC), model.name, str(model.version), batch.values,
        model.feature_names, batch.scores.tolist(), batch.decisions, model.threshold,
        batch.latency_s * 1000.0, batch.degraded, batch.request.entry, batch.variant,
        [tx.transaction_id for tx in txs] if txs else None,
        [tx.customer_id for tx in txs] if txs else None,
        [tx.terminal_id for tx in txs] if txs else None,
        [tx.timestamp for tx in txs] if txs else None,
    )  # fmt: skip


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


#: From this many rows, a sink with `append_batch` gets the rows as one `PredictionBatch`
#: (columns: one journal frame, one Arrow table) instead of a record each.
BATCH_ROWS = 32


class PredictionLogObserver:
    """Appends every scored batch to the prediction log."""

    def __init__(self, sink: RecordSink) -> None:
        self.sink = sink

    def observe(self, batch: ScoredBatch) -> None:
        """One record per row of `batch` (positional: 5x cheaper than keywords for slots);
        a large batch as columns, where the sink takes them."""
        append_batch = getattr(self.sink, "append_batch", None)
        if (
            append_batch is not None
            and len(batch.scores) >= BATCH_ROWS
            and not batch.request.logged
        ):
            append_batch(columns(batch))
            return
        now = datetime.now(UTC)
        model = batch.model
        name, threshold = model.name, model.threshold
        names = model.feature_names  # one shared tuple: the log encodes it once per flush
        version = str(model.version)
        latency_ms = batch.latency_s * 1000.0
        degraded, variant, entry = batch.degraded, batch.variant, batch.request.entry
        rows, scores = batch.values.tolist(), batch.scores.tolist()
        txs = batch.request.transactions
        ids = row_ids(batch)
        if txs:
            records = [
                PredictionRecord(
                    rid, now, name, version, row, score, decision, threshold, latency_ms,
                    degraded, names, entry, variant,
                    tx.transaction_id, tx.customer_id, tx.terminal_id, tx.timestamp,
                )
                for rid, tx, row, score, decision in zip(
                    ids, txs, rows, scores, batch.decisions, strict=True
                )
            ]  # fmt: skip
        else:
            records = [
                PredictionRecord(
                    rid, now, name, version, row, score, decision, threshold, latency_ms,
                    degraded, names, entry, variant,
                )
                for rid, row, score, decision in zip(
                    ids, rows, scores, batch.decisions, strict=True
                )
            ]  # fmt: skip
        logged = batch.request.logged
        if logged:  # a job run again: rows its interrupted run logged are not logged twice
            records = [r for r in records if (r.request_id, variant) not in logged]
            if not records:
                return
        self.sink.append(records)
