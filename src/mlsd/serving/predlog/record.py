"""One logged prediction, and its columnar form shared by every prediction-log backend."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from mlsd.errors import ValidationError

#: Stored columns, in order. `features` is a JSON object {name: value or null}.
SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("model", pa.string()),
        ("version", pa.string()),
        ("features", pa.string()),
        ("score", pa.float64()),
        ("decision", pa.string()),
        ("threshold", pa.float64()),
        ("latency_ms", pa.float64()),
        ("degraded", pa.bool_()),
        ("endpoint", pa.string()),
        ("variant", pa.string()),
    ]
)
COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """What a scoring request decided, with everything an audit or drift check needs.

    `features` is a mapping name -> value, or a sequence of values with
    `feature_names` beside it. Missing values are None; NaN and infinities are
    stored as null.
    """

    request_id: str
    ts: datetime
    model: str
    version: str
    features: Mapping[str, float | None] | Sequence[float | None]
    score: float
    decision: str
    threshold: float
    latency_ms: float
    degraded: bool = False
    feature_names: Sequence[str] | None = field(default=None)
    endpoint: str = "score"
    variant: str = ""

    def feature_dict(self) -> dict[str, float | None]:
        """The features as {name: value}, non-finite values as None."""
        if isinstance(self.features, Mapping):
            items = list(self.features.items())
        else:
            values = list(self.features)
            names = list(self.feature_names) if self.feature_names is not None else None
            if names is None:
                names = [f"f{i}" for i in range(len(values))]
            if len(names) != len(values):
                raise ValidationError(
                    f"{len(values)} feature values but {len(names)} names",
                    field="feature_names",
                )
            items = list(zip(names, values, strict=True))
        return {str(k): _finite(v) for k, v in items}


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValidationError("prediction timestamps must be timezone-aware", field="ts")
    return ts.astimezone(UTC)


Row = tuple[Any, ...]


def to_row(r: PredictionRecord) -> Row:
    """A record as a tuple in `COLUMNS` order, features as JSON text."""
    return (
        r.request_id,
        _utc(r.ts),
        r.model,
        str(r.version),
        json.dumps(r.feature_dict(), separators=(",", ":")),
        float(r.score),
        str(r.decision),
        float(r.threshold),
        float(r.latency_ms),
        bool(r.degraded),
        r.endpoint,
        r.variant,
    )


def to_rows(records: Sequence[PredictionRecord]) -> list[Row]:
    """Records as tuples in `COLUMNS` order."""
    return [to_row(r) for r in records]


def rows_to_table(rows: Sequence[Row]) -> pa.Table:
    """Rows from `to_row` as an Arrow table with `SCHEMA`."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in COLUMNS]
    return pa.Table.from_arrays(
        [pa.array(list(col), type=f.type) for col, f in zip(columns, SCHEMA, strict=True)],
        schema=SCHEMA,
    )


def finish_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A read result in `COLUMNS` order, sorted by time, features parsed into dicts."""
    if frame.empty:
        empty: pd.DataFrame = SCHEMA.empty_table().to_pandas()
        return empty
    frame = frame.loc[:, list(COLUMNS)].sort_values("ts", kind="stable").reset_index(drop=True)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    parsed = [f if isinstance(f, dict) else json.loads(f) for f in frame["features"]]
    frame["features"] = pd.Series(parsed, index=frame.index, dtype=object)
    return frame


def features_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The `features` column of a read result expanded into one column per feature."""
    return pd.DataFrame.from_records(list(frame["features"]), index=frame.index)
