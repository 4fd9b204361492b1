"""The label table: delayed fraud labels joined to the predictions they judge.

Written by the labels consumer (`mlsd stream labels`, `mlsd.streaming.labels`), read by
monitoring (performance with delayed labels). Parquet parts under `home/labels/`, each
written whole (temporary file, then rename) before the event log commits what it holds,
so a crash loses nothing committed and a redelivery only writes a row again.

Idempotent by transaction id: `read()` keeps one row per `TRANSACTION_ID`, the one with a
prediction over one without (a label can arrive before its decision), then the latest
written. `compact()` rewrites the parts as one.

Columns: `TRANSACTION_ID`, `label` (0/1), `label_time` and `event_time` (UTC), `score`,
`decision`, `model`, `version` (pandas `Int64`), `variant` (null until the decision is
known), `written_at`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("TRANSACTION_ID", pa.int64()),
        ("label", pa.int8()),
        ("label_time", pa.timestamp("us", tz="UTC")),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("score", pa.float64()),
        ("decision", pa.string()),
        ("model", pa.string()),
        ("version", pa.int64()),
        ("variant", pa.string()),
        ("written_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One transaction's label, and its prediction when known."""

    transaction_id: int
    label: int
    label_time: datetime
    event_time: datetime
    score: float | None = None
    decision: str | None = None
    model: str | None = None
    version: int | None = None
    variant: str | None = None


class LabelTable:
    """Parquet parts of label rows in one folder; one row per transaction id on read."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def parts(self) -> list[Path]:
        """The written parts, oldest first."""
        return sorted(self.folder.glob("part-*.parquet"))

    def write(self, rows: Sequence[LabelRow]) -> Path | None:
        """Write `rows` as one new part (atomically); its path, None if there were none."""
        if not rows:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        table = pa.table(
            {
                "TRANSACTION_ID": [r.transaction_id for r in rows],
                "label": [r.label for r in rows],
                "label_time": [r.label_time for r in rows],
                "event_time": [r.event_time for r in rows],
                "score": [r.score for r in rows],
                "decision": [r.decision for r in rows],
                "model": [r.model for r in rows],
                "version": [r.version for r in rows],
                "variant": [r.variant for r in rows],
                "written_at": [now] * len(rows),
            },
            schema=SCHEMA,
        )
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        tmp.replace(self.folder / name)
        return self.folder / name

    def read(self) -> pd.DataFrame:
        """One row per transaction id (with a prediction first, then the latest written),
        sorted by transaction id."""
        parts = self.parts()
        if not parts:
            empty: pd.DataFrame = SCHEMA.empty_table().to_pandas()
            return empty
        frame: pd.DataFrame = pa.concat_tables([pq.read_table(p) for p in parts]).to_pandas()
        frame["_known"] = frame["decision"].notna()
        frame["_order"] = range(len(frame))
        frame = frame.sort_values(["TRANSACTION_ID", "_known", "_order"], kind="stable")
        frame = frame.drop_duplicates("TRANSACTION_ID", keep="last")
        frame["version"] = frame["version"].astype("Int64")  # null until the decision is known
        return frame.drop(columns=["_known", "_order"]).reset_index(drop=True)

    def compact(self) -> int:
        """Rewrite the parts as one (the rows `read` keeps); the number of rows."""
        parts = self.parts()
        if len(parts) < 2:
            return len(self.read())
        frame = self.read()
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False), tmp)
        tmp.replace(self.folder / name)
        for part in parts:  # a crash before this leaves duplicates, which read() drops
            part.unlink()
        return len(frame)
