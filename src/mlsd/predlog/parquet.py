"""The prediction log as Parquet files: `{root}/date=YYYY-MM-DD/part-*.parquet`.

Each flush writes one file per UTC day it holds, to a hidden temporary name first,
fsynced, and then renamed, so a reader never sees half a file and a stored record
survives power loss. The file's name carries the writer's journal mark (`compact.py`),
so a replay after a crash knows what is stored. A background thread merges the files
of past days into one (`compact.py` explains how that stays crash-safe): at open, then
every `compact_every_s`. The journal is `{root}/.journal` (`journal.py`).

Who encodes and writes: with `writer="process"` (`MLSD_PREDICTION_LOG_WRITER=process`;
the default is the thread, docs/predlog.md says why) a child process (`writer.py`,
`writer_child.py`) turns each sealed journal segment into the day files, with
`store_tables` as the flusher thread does with `writer="thread"`; the serving process's
GIL is then never held by an Arrow encoding or a Parquet write. Replaying a dead
writer's journal at open and the compaction of past days stay in this process (at open,
and once an hour).

`ParquetPredictionReader` only reads: no thread, no file written, no folder made.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlsd.errors import UnavailableError
from mlsd.predlog.base import BufferedLog
from mlsd.predlog.block import parts_table
from mlsd.predlog.compact import (
    CompactionResult,
    compact_before,
    compact_day,
    journal_marks,
    live_files,
    part_name,
    read_live,
)
from mlsd.predlog.journal import JournalMark
from mlsd.predlog.record import SCHEMA, PredictionRecord, finish_frame, to_table
from mlsd.predlog.writer import WriterProcess
from mlsd.priority import in_background

log = logging.getLogger(__name__)


#: Writer options for the one-second part files. Dictionary encoding only where values repeat
#: (model, version, decision, endpoint, variant, feature names): tried on every column, it
#: spends most of the write on high-cardinality floats and ids and then falls back to plain.
#: 7,000 records: 24 ms -> 3.4 ms (random features), 6.7 -> 5.0 ms (count-like features).
#: Statistics only on the time columns that reads filter on. Compaction rewrites the parts
#: of a past day with the defaults (smaller files, off the hot path).
PART_OPTIONS: dict[str, object] = {
    "use_dictionary": [
        "model", "version", "decision", "endpoint", "variant", "features.key_value.key",
    ],
    "write_statistics": ["ts", "tx_time"],
}  # fmt: skip


def _days(start: datetime | None, end: datetime | None) -> tuple[date, date]:
    first = start.astimezone(UTC).date() if start else date.min
    last = end.astimezone(UTC).date() if end else date.max
    return first, last


class ParquetPredictionReader:
    """Reads the Parquet prediction log under `root`; starts nothing, writes nothing."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def read(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Stored records with start <= ts < end, oldest first (empty if there is no log)."""
        try:
            table = read_live(self.root, *_days(start, end))
        except OSError as exc:
            raise UnavailableError(
                f"cannot read the prediction log under {self.root}: {exc}"
            ) from exc
        if table is None:
            return finish_frame(SCHEMA.empty_table().to_pandas())
        if start is not None:
            table = table.filter(
                pc.greater_equal(table["ts"], pa.scalar(start, SCHEMA.field("ts").type))
            )
        if end is not None:
            table = table.filter(pc.less(table["ts"], pa.scalar(end, SCHEMA.field("ts").type)))
        return finish_frame(table.to_pandas())

    def files(self, start: datetime | None = None, end: datetime | None = None) -> list[Path]:
        """The live Parquet files holding the days of start..end: give these (not a glob of
        the folder) to DuckDB or any outside reader."""
        return live_files(self.root, *_days(start, end))

    def close(self) -> None:
        """Nothing to release (a reader holds no file open between reads)."""


#: Who encodes and writes the batches: a child process (`writer.py`), or the flusher thread.
WRITERS = ("process", "thread")


class ParquetPredictionLog(BufferedLog[pa.Table]):
    """Predictions in day partitions under `root` (by default `home/predictions`).

    `writer="process"` (`MLSD_PREDICTION_LOG_WRITER=process`, opt-in) stores the
    batches from a child process; "thread" on the flusher thread. Without a journal the
    batches are always written by the thread (the journal's segment is what the child
    reads, and its marks are what make a child's retry exactly once).
    """

    def __init__(
        self,
        root: Path,
        flush_seconds: float = 1.0,
        flush_records: int = 5_000,
        max_buffered: int = 1_000_000,
        compact_every_s: float | None = 3600.0,
        journal: bool = True,
        writer: str = "thread",
    ) -> None:
        if compact_every_s is not None and compact_every_s <= 0:
            raise ValueError("compact_every_s must be > 0 (or None to turn compaction off)")
        if writer not in WRITERS:
            raise ValueError(f"writer must be one of {', '.join(WRITERS)}, not {writer!r}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.writer = writer if journal else "thread"
        if self.writer == "process":
            self._offload = WriterProcess(self.root)
        self.reader = ParquetPredictionReader(self.root)
        journal_dir = self.root / ".journal" if journal else None
        super().__init__(flush_seconds, flush_records, max_buffered, journal_dir)
        self.compact_every_s = compact_every_s
        self._stop_compactor = threading.Event()
        self._compactor: threading.Thread | None = None
        if compact_every_s is not None:
            self._compactor = threading.Thread(
                target=in_background(self._compact_loop),
                name="ParquetPredictionLog-compactor",
                daemon=True,
            )
            self._compactor.start()

    def compact(self, day: date) -> CompactionResult:
        """Merge the files of one UTC day into one file now (safe while writing and reading)."""
        return compact_day(self.root, day)

    def compact_past_days(self, today: date | None = None) -> list[CompactionResult]:
        """Compact every day before `today` (UTC today by default)."""
        return compact_before(self.root, today, stop=self._stop_compactor.is_set)

    def files(self, start: datetime | None = None, end: datetime | None = None) -> list[Path]:
        """The live Parquet files holding the days of start..end: give these (not a glob of
        the folder) to DuckDB or any outside reader."""
        return self.reader.files(start, end)

    def _compact_loop(self) -> None:
        assert self.compact_every_s is not None
        while not self._stop_compactor.is_set():
            try:
                self.compact_past_days()
            except OSError as exc:
                log.warning("prediction log compaction failed, will retry: %s", exc)
            except Exception:  # the compactor must outlive any bug: log it loudly, keep going
                log.exception("prediction log compaction crashed, will retry")
            self._stop_compactor.wait(self.compact_every_s)

    def _encode(self, records: list[PredictionRecord]) -> pa.Table:
        return to_table(records)

    def _encode_parts(self, parts: list[Sequence[PredictionRecord]]) -> pa.Table:
        return parts_table(parts)  # blocks as columns: no object per row on the flusher

    def _store(self, chunks: list[pa.Table], mark: JournalMark | None) -> None:
        store_tables(self.root, chunks, mark)

    def _wire(self, chunk: pa.Table) -> bytes:
        return table_bytes(chunk)

    def _unstored(
        self, journal_id: str, entries: list[tuple[int, PredictionRecord]]
    ) -> list[PredictionRecord]:
        marks: dict[date, int] = {}
        fresh: list[PredictionRecord] = []
        try:
            for seq, record in entries:
                day = record.ts.astimezone(UTC).date()
                if day not in marks:
                    marks[day] = journal_marks(self.root, day).get(journal_id, 0)
                if seq > marks[day]:
                    fresh.append(record)
        except OSError as exc:
            raise UnavailableError(
                f"cannot read the prediction log's journal marks under {self.root}: {exc}"
            ) from exc
        return fresh

    def _read(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        return self.reader.read(start, end)

    def _release(self) -> None:
        self._stop_compactor.set()
        if self._compactor is not None:
            self._compactor.join()
            self._compactor = None


def store_tables(root: Path, chunks: list[pa.Table], mark: JournalMark | None) -> None:
    """Write tables (oldest first) as one part file per UTC day under `root`, named with
    `mark`: every day's file is written and fsynced under a hidden name first, then all
    are renamed, so a failed write commits no day (it is retried whole) and a reader never
    sees half a file. UnavailableError when the disk fails. The writer process stores its
    batches with this too."""
    table = chunks[0] if len(chunks) == 1 else pa.concat_tables(chunks)
    days = pc.strftime(table["ts"], format="%Y-%m-%d")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    name = part_name(stamp, None if mark is None else (mark.journal_id, mark.seq))
    written: list[tuple[Path, Path]] = []
    try:
        distinct = sorted(pc.unique(days).to_pylist())  # in C: no string per row
        for day in distinct:
            part = table if len(distinct) == 1 else table.filter(pc.equal(days, day))
            folder = root / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.tmp"
            pq.write_table(part, tmp, **PART_OPTIONS)
            _fsync(tmp)
            written.append((tmp, folder / name))
        for tmp, final in written:
            os.replace(tmp, final)
            _fsync(final.parent)
    except OSError as exc:
        for tmp, _ in written:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise UnavailableError(f"cannot write the prediction log under {root}: {exc}") from exc


def table_bytes(table: pa.Table) -> bytes:
    """A table as an Arrow IPC stream (what `pa.ipc.open_stream(...).read_all()` reads)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _fsync(path: Path) -> None:
    """Make a file (or a folder's entries) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
