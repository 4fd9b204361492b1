"""A batch of predictions as columns: what a stream processor's scoring call appends.

`PredictionLog.append` takes one `PredictionRecord` per row; a stream batch of thousands of
rows sharing their model, version, variant, time and latency would pay per row for what
they share (the journal's context lookups, one Python list per column per row in the
Arrow encoding). `PredictionBatch` holds those once and the rest as columns, and
`BufferedLog.append_batch` journals it as one frame and encodes it as one Arrow table:
the same frame layout (a replay reads records), the same stored table as its `records()`
appended one by one (`tests/unit/predlog/test_predlog_batch.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from mlsd.errors import ValidationError
from mlsd.predlog.record import SCHEMA, PredictionRecord, to_table

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class PredictionBatch:
    """n predictions of one scoring call: the shared context once, the rest as columns
    (`features` (n, k) in `feature_names` order; the transaction columns None together,
    for rows without a transaction)."""

    request_ids: Sequence[str]
    ts: datetime
    model: str
    version: str
    features: np.ndarray
    feature_names: tuple[str, ...]
    scores: Sequence[float]
    decisions: Sequence[str]
    threshold: float
    latency_ms: float
    degraded: bool
    endpoint: str
    variant: str
    transaction_ids: Sequence[int] | None = None
    customer_ids: Sequence[int] | None = None
    terminal_ids: Sequence[int] | None = None
    tx_times: Sequence[datetime] | None = None

    def __post_init__(self) -> None:
        n = len(self.request_ids)
        if self.ts.tzinfo is None:
            raise ValidationError("prediction timestamps must be timezone-aware", field="ts")
        if self.features.shape != (n, len(self.feature_names)):
            raise ValidationError(
                f"features of shape {list(self.features.shape)} for {n} rows of "
                f"{len(self.feature_names)} names",
                field="features",
            )
        columns = [self.scores, self.decisions, *self._tx_columns()]
        if any(len(c) != n for c in columns):
            raise ValidationError("the batch's columns differ in length", field="batch")

    def _tx_columns(self) -> list[Sequence[object]]:
        given = [self.transaction_ids, self.customer_ids, self.terminal_ids, self.tx_times]
        if all(c is None for c in given):
            return []
        if any(c is None for c in given):
            raise ValidationError("transaction columns come all together", field="batch")
        return [c for c in given if c is not None]

    def __len__(self) -> int:
        return len(self.request_ids)

    def records(self) -> list[PredictionRecord]:
        """The batch as records, as `PredictionLogObserver` builds them one by one."""
        rows = self.features.tolist()
        head = (self.ts, self.model, self.version)
        if self.transaction_ids is None:
            return [
                PredictionRecord(
                    rid, *head, row, score, decision, self.threshold, self.latency_ms,
                    self.degraded, self.feature_names, self.endpoint, self.variant,
                )
                for rid, row, score, decision in zip(
                    self.request_ids, rows, self.scores, self.decisions, strict=True
                )
            ]  # fmt: skip
        return [
            PredictionRecord(
                rid, *head, row, score, decision, self.threshold, self.latency_ms,
                self.degraded, self.feature_names, self.endpoint, self.variant, t, c, m, when,
            )
            for rid, row, score, decision, (t, c, m, when) in zip(
                self.request_ids, rows, self.scores, self.decisions,
                zip(*self._tx_columns(), strict=True), strict=True,
            )
        ]  # fmt: skip

    def table(self) -> pa.Table:
        """The batch as an Arrow table with `SCHEMA`: `to_table(self.records())`, built
        from the columns."""
        n = len(self)

        def same(value: object, kind: pa.DataType) -> pa.Array:
            return pa.array([value] * n, kind)

        ts_us = (self.ts.astimezone(UTC) - _EPOCH) // _MICROSECOND
        stamp = pa.array(np.full(n, ts_us, dtype=np.int64)).view(SCHEMA.field("ts").type)
        k = len(self.feature_names)
        flat = np.asarray(self.features, dtype=np.float64).reshape(-1)
        keys = pa.array([str(f) for f in self.feature_names], pa.string()).take(
            pa.array(np.tile(np.arange(k, dtype=np.int32), n))
        )
        offsets = pa.array(np.arange(0, k * n + 1, k, dtype=np.int32))
        features = pa.MapArray.from_arrays(
            offsets, keys, pa.array(flat, pa.float64(), mask=~np.isfinite(flat))
        )
        if self.transaction_ids is None:
            tx: list[pa.Array] = [pa.nulls(n, pa.int64())] * 3
            tx.append(pa.nulls(n, SCHEMA.field("tx_time").type))
        else:
            tx = [
                pa.array(list(c or ()), pa.int64())
                for c in (self.transaction_ids, self.customer_ids, self.terminal_ids)
            ]
            tx.append(pa.array(list(self.tx_times or ()), SCHEMA.field("tx_time").type))
        arrays = [
            pa.array(list(self.request_ids), pa.string()),
            stamp,
            same(str(self.model), pa.string()),
            same(str(self.version), pa.string()),
            features,
            pa.array(np.asarray(self.scores, dtype=np.float64), pa.float64()),
            pa.array(list(self.decisions), pa.string()),
            same(float(self.threshold), pa.float64()),
            same(float(self.latency_ms), pa.float64()),
            same(bool(self.degraded), pa.bool_()),
            same(str(self.endpoint), pa.string()),
            same(str(self.variant), pa.string()),
            *tx,
        ]
        return pa.Table.from_arrays(arrays, schema=SCHEMA)


#: What a log's buffer holds: single records, and batches.
Item = PredictionRecord | PredictionBatch


def rows(items: Sequence[Item]) -> int:
    """The predictions in `items`."""
    return sum(len(i) if isinstance(i, PredictionBatch) else 1 for i in items)


def expand(items: Sequence[Item]) -> list[PredictionRecord]:
    """`items` as records, in order."""
    out: list[PredictionRecord] = []
    for item in items:
        if isinstance(item, PredictionBatch):
            out.extend(item.records())
        else:
            out.append(item)
    return out


def items_table(items: Sequence[Item]) -> pa.Table:
    """`to_table(expand(items))`, each batch encoded from its columns."""
    parts: list[pa.Table] = []
    run: list[PredictionRecord] = []
    for item in items:
        if isinstance(item, PredictionBatch):
            if run:
                parts.append(to_table(run))
                run = []
            parts.append(item.table())
        else:
            run.append(item)
    if run or not parts:
        parts.append(to_table(run))
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)
