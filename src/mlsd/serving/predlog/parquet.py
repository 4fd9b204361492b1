"""The prediction log as Parquet files: `{root}/date=YYYY-MM-DD/part-*.parquet`.

Each flush writes one file per UTC day it holds, to a hidden temporary name first
and then renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlsd.errors import UnavailableError
from mlsd.serving.predlog.base import BufferedLog
from mlsd.serving.predlog.record import SCHEMA, PredictionRecord, finish_frame, to_table


class ParquetPredictionLog(BufferedLog):
    """Predictions in day partitions under `root` (by default `home/predictions`)."""

    def __init__(
        self,
        root: Path,
        flush_seconds: float = 1.0,
        flush_records: int = 5_000,
        max_buffered: int = 1_000_000,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        super().__init__(flush_seconds, flush_records, max_buffered)

    def _write(self, records: list[PredictionRecord]) -> None:
        table = to_table(records)
        days = pc.strftime(table["ts"], format="%Y-%m-%d")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        try:
            distinct = sorted(set(days.to_pylist()))
            for day in distinct:
                part = table if len(distinct) == 1 else table.filter(pc.equal(days, day))
                folder = self.root / f"date={day}"
                folder.mkdir(parents=True, exist_ok=True)
                name = f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
                tmp = folder / f".{name}.tmp"
                pq.write_table(part, tmp)
                os.replace(tmp, folder / name)
        except OSError as exc:
            raise UnavailableError(
                f"cannot write the prediction log under {self.root}: {exc}"
            ) from exc

    def _encode_one(self, record: PredictionRecord) -> object:
        return to_table([record])

    def _files(self, start: datetime | None, end: datetime | None) -> list[Path]:
        first = start.astimezone(UTC).date() if start else date.min
        last = end.astimezone(UTC).date() if end else date.max
        files: list[Path] = []
        for folder in sorted(self.root.glob("date=*")):
            try:
                day = date.fromisoformat(folder.name.removeprefix("date="))
            except ValueError:
                continue
            if first <= day <= last:
                files.extend(sorted(folder.glob("part-*.parquet")))
        return files

    def _read(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        files = self._files(start, end)
        if not files:
            return finish_frame(SCHEMA.empty_table().to_pandas())
        table = pa.concat_tables([pq.read_table(f, schema=SCHEMA) for f in files])
        if start is not None:
            table = table.filter(
                pc.greater_equal(table["ts"], pa.scalar(start, SCHEMA.field("ts").type))
            )
        if end is not None:
            table = table.filter(pc.less(table["ts"], pa.scalar(end, SCHEMA.field("ts").type)))
        return finish_frame(table.to_pandas())

    def _release(self) -> None:
        return None
