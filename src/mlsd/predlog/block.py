"""A block of prediction records: rows that share their context, kept as columns.

The rows of one scored batch, or of all the requests one variant answered in one event-loop
tick (`mlsd.inference.log_observer`), share their model, version, threshold, entry point,
variant, feature names and timestamp; their feature values are one matrix. Building one
`PredictionRecord` per row, then taking each apart again in the journal and in the Arrow
encoding, was most of what the log cost the scoring path. A `RecordBlock` keeps the shared
fields once and the rest as columns, all the way: the journal writes it as one frame
(`journal.py`), the Arrow encoding concatenates its arrays (`parts_table`).

It is a `Sequence[PredictionRecord]`: indexing makes the record (a slice, a smaller
block), so every consumer of records (PostgreSQL rows, a replay, a filter) takes it as is.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, overload

import numpy as np
import pyarrow as pa

from mlsd.errors import ValidationError
from mlsd.predlog.record import SCHEMA, PredictionRecord, shared_map, to_table, to_utc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: A block's transaction columns: ids, customer ids, terminal ids, times (aware), n each.
TxColumns = tuple[list[int], list[int], list[int], list[datetime]]


class RecordBlock(Sequence[PredictionRecord]):
    """`len(request_ids)` records sharing one context; treat as immutable once appended.

    `features` is an (n, k) float32 or float64 matrix in `feature_names` order (NaN and
    infinities are stored as null, as in a record); `scores` n float64; `decisions`,
    `latency_ms` and `degraded` one per row; `transactions` the rows' transactions as
    columns, None for rows without one (V2 tensors).
    """

    __slots__ = (
        "_tx_us",
        "decisions",
        "degraded",
        "endpoint",
        "feature_names",
        "features",
        "latency_ms",
        "model",
        "request_ids",
        "scores",
        "threshold",
        "transactions",
        "ts",
        "variant",
        "version",
    )  # fmt: skip

    def __init__(
        self,
        request_ids: list[str],
        ts: datetime,
        model: str,
        version: str,
        features: np.ndarray,
        scores: np.ndarray,
        decisions: list[str],
        threshold: float,
        latency_ms: list[float],
        degraded: list[bool],
        feature_names: tuple[str, ...],
        endpoint: str,
        variant: str,
        transactions: TxColumns | None = None,
    ) -> None:
        n = len(request_ids)
        if features.dtype != np.float32 and features.dtype != np.float64:
            features = features.astype(np.float64)
        if features.shape != (n, len(feature_names)):
            raise ValidationError(
                f"a block of {n} rows of {len(feature_names)} features got a matrix of "
                f"shape {features.shape}",
                field="features",
            )
        if any(len(c) != n for c in (scores, decisions, latency_ms, degraded)):
            raise ValidationError(
                f"a block of {n} rows needs {n} scores, decisions, latencies and flags"
            )
        if transactions is not None and any(len(c) != n for c in transactions):
            raise ValidationError(f"a block's transaction columns are {n} long", field="tx")
        self.request_ids = request_ids
        self.ts = ts
        self.model = model
        self.version = version
        self.features = features
        self.scores = np.asarray(scores, dtype=np.float64)
        self.decisions = decisions
        self.threshold = threshold
        self.latency_ms = latency_ms
        self.degraded = degraded
        self.feature_names = feature_names
        self.endpoint = endpoint
        self.variant = variant
        self.transactions = transactions
        self._tx_us: list[int] | None = None

    def tx_micros(self) -> list[int] | None:
        """The transactions' times in µs since the epoch, None without transactions.

        Worked out once: the journal and the Arrow encoding both need them, and converting
        a datetime costs more than anything else per row there. TypeError for a naive time.
        """
        if self.transactions is None:
            return None
        if self._tx_us is None:
            self._tx_us = [(t - _EPOCH) // _MICROSECOND for t in self.transactions[3]]
        return self._tx_us

    def __len__(self) -> int:
        return len(self.request_ids)

    @overload
    def __getitem__(self, index: int) -> PredictionRecord: ...

    @overload
    def __getitem__(self, index: slice) -> RecordBlock: ...

    def __getitem__(self, index: int | slice) -> PredictionRecord | RecordBlock:
        if isinstance(index, slice):
            return self._slice(index)
        return self.records()[index]

    def __iter__(self) -> Iterator[PredictionRecord]:
        return iter(self.records())

    def records(self) -> list[PredictionRecord]:
        """One record per row (what a consumer of records sees)."""
        rows = self.features.tolist()
        scores = self.scores.tolist()
        head = (self.ts, self.model, self.version)
        threshold, names, endpoint, variant = (
            self.threshold, self.feature_names, self.endpoint, self.variant
        )  # fmt: skip
        columns = (self.request_ids, rows, scores, self.decisions, self.latency_ms, self.degraded)
        if self.transactions is None:
            return [
                PredictionRecord(rid, *head, row, score, decision, threshold, latency, degraded,
                                 names, endpoint, variant)
                for rid, row, score, decision, latency, degraded in zip(*columns, strict=True)
            ]  # fmt: skip
        return [
            PredictionRecord(rid, *head, row, score, decision, threshold, latency, degraded,
                             names, endpoint, variant, tid, cid, term, when)
            for rid, row, score, decision, latency, degraded, tid, cid, term, when in zip(
                *columns, *self.transactions, strict=True
            )
        ]  # fmt: skip

    def _slice(self, index: slice) -> RecordBlock:
        tx = self.transactions
        cut: TxColumns | None = (
            None if tx is None else (tx[0][index], tx[1][index], tx[2][index], tx[3][index])
        )
        return RecordBlock(
            self.request_ids[index], self.ts, self.model, self.version,
            self.features[index], self.scores[index], self.decisions[index], self.threshold,
            self.latency_ms[index], self.degraded[index], self.feature_names, self.endpoint,
            self.variant, cut,
        )  # fmt: skip


def flat_records(parts: Sequence[Sequence[PredictionRecord]]) -> list[PredictionRecord]:
    """Every record of `parts`, in order."""
    out: list[PredictionRecord] = []
    for part in parts:
        out.extend(part.records() if isinstance(part, RecordBlock) else part)
    return out


def parts_table(parts: Sequence[Sequence[PredictionRecord]]) -> pa.Table:
    """Appended parts (record lists and blocks) as one Arrow table with `SCHEMA`, in order:
    blocks by concatenating their columns, record lists by `record.to_table`."""
    tables: list[pa.Table] = []
    run: list[Sequence[PredictionRecord]] = []
    for part in parts:
        if run and isinstance(part, RecordBlock) != isinstance(run[0], RecordBlock):
            tables.append(_run_table(run))
            run = []
        run.append(part)
    if run:
        tables.append(_run_table(run))
    if not tables:
        return to_table([])
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _run_table(run: list[Sequence[PredictionRecord]]) -> pa.Table:
    if not isinstance(run[0], RecordBlock):
        return to_table(flat_records(run))
    blocks = [b for b in run if isinstance(b, RecordBlock)]
    sizes = np.fromiter(map(len, blocks), np.int64, len(blocks))
    rows = int(sizes.sum())
    owner: np.ndarray | None = None  # each row's block, made when a shared field differs

    def each(values: list[Any], kind: pa.DataType) -> pa.Array:
        """One value per block, repeated for its rows. A server's blocks (one per loop
        tick, mostly one row each) nearly always share it: one repeat, no per-row list."""
        nonlocal owner
        if all(v == values[0] for v in values):
            return pa.repeat(pa.scalar(values[0], kind), rows)
        if owner is None:
            owner = np.repeat(np.arange(len(blocks)), sizes)
        return pa.array(values, kind).take(owner)

    def chained(columns: Iterator[Sequence[Any]]) -> list[Any]:
        return list(itertools.chain.from_iterable(columns))

    def tx_column(i: int) -> list[Any]:
        """Column `i` of the transactions, None for the rows of blocks without them."""
        return chained(
            [None] * len(b) if b.transactions is None else b.transactions[i] for b in blocks
        )

    times: list[int | None] = []
    for b in blocks:
        micros = b.tx_micros()
        times += [None] * len(b) if micros is None else micros
    return pa.Table.from_arrays(
        [
            pa.array(chained(b.request_ids for b in blocks), pa.string()),
            each([(to_utc(b.ts) - _EPOCH) // _MICROSECOND for b in blocks], pa.int64()).cast(
                SCHEMA.field("ts").type
            ),
            each([b.model for b in blocks], pa.string()),
            each([b.version for b in blocks], pa.string()),
            _features(blocks),
            pa.array(np.concatenate([b.scores for b in blocks]), pa.float64()),
            pa.array(chained(b.decisions for b in blocks), pa.string()),
            each([float(b.threshold) for b in blocks], pa.float64()),
            pa.array(chained(b.latency_ms for b in blocks), pa.float64()),
            pa.array(chained(b.degraded for b in blocks), pa.bool_()),
            each([b.endpoint for b in blocks], pa.string()),
            each([b.variant for b in blocks], pa.string()),
            pa.array(tx_column(0), pa.int64()),
            pa.array(tx_column(1), pa.int64()),
            pa.array(tx_column(2), pa.int64()),
            pa.array(times, pa.int64()).cast(SCHEMA.field("tx_time").type),
        ],
        schema=SCHEMA,
    )


def _features(blocks: list[RecordBlock]) -> pa.Array:
    """The `features` column: one matrix per run of blocks that share their names."""
    arrays: list[pa.Array] = []
    start = 0
    for end in range(1, len(blocks) + 1):
        if end < len(blocks) and blocks[end].feature_names == blocks[start].feature_names:
            continue
        part = blocks[start:end]
        matrix = part[0].features if len(part) == 1 else np.concatenate([b.features for b in part])
        arrays.append(shared_map(part[0].feature_names, matrix))
        start = end
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
