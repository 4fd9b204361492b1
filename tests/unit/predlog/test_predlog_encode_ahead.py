"""The flusher encodes between writes: every record written once, in order, whatever fails."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from mlsd.errors import UnavailableError
from mlsd.predlog import BufferedLog, ParquetPredictionLog, PredictionRecord
from mlsd.predlog.journal import JournalMark


def record(i: int, score: object = 0.5) -> PredictionRecord:
    return PredictionRecord(
        f"r{i}", datetime(2026, 5, 1, 12, tzinfo=UTC), "fraud", "1", [float(i)], score,  # type: ignore[arg-type]
        "legit", 0.5, 1.0, feature_names=("f0",),
    )  # fmt: skip


class ListLog(BufferedLog[list[str]]):
    """A BufferedLog storing into a list; `down` makes every store fail."""

    def __init__(self, **kwargs: object) -> None:
        self.stored: list[str] = []
        self.encodes = 0
        self.stores = 0
        self.down = False
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def _encode(self, records: list[PredictionRecord]) -> list[str]:
        self.encodes += 1
        return [f"{r.request_id}:{float(r.score)}" for r in records]

    def _store(self, chunks: list[list[str]], mark: JournalMark | None) -> None:
        if self.down:
            raise UnavailableError("storage down")
        self.stores += 1
        for chunk in chunks:
            self.stored.extend(chunk)

    def _unstored(
        self, journal_id: str, entries: list[tuple[int, PredictionRecord]]
    ) -> list[PredictionRecord]:
        return [r for _, r in entries]

    def _read(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        return pd.DataFrame({"request_id": [s.split(":")[0] for s in self.stored]})

    def _release(self) -> None:
        pass


def _wait_for(predicate: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_records_are_encoded_between_writes_and_written_once_in_order() -> None:
    plog = ListLog(flush_seconds=1.0)
    for i in range(5):
        plog.append([record(i)])
        time.sleep(plog.flush_seconds / plog.ENCODE_TICKS * 1.5)  # a tick or two per record
    assert plog.encodes >= 2, "chunks were encoded before the write"
    plog.close()
    assert [s.split(":")[0] for s in plog.stored] == [f"r{i}" for i in range(5)]
    assert plog.stats().written == 5
    assert plog.stats().buffered == 0


def test_encoded_chunks_survive_a_failed_write_and_count_as_buffered() -> None:
    plog = ListLog(flush_seconds=60.0, flush_records=10, max_buffered=10)
    plog.down = True
    plog.append([record(i) for i in range(4)])
    plog._encode_ahead()  # what the flusher does between writes
    plog.append([record(i) for i in range(4, 6)])
    with pytest.raises(UnavailableError):
        plog.flush()
    stats = plog.stats()
    assert (stats.buffered, stats.written, stats.write_errors) == (6, 0, 1)
    plog.append([record(i) for i in range(6, 14)])  # room for 4 more only
    assert plog.stats().dropped == 4
    plog.down = False
    assert plog.flush() == 10
    plog.close()
    assert [s.split(":")[0] for s in plog.stored] == [f"r{i}" for i in range(10)]


def test_a_malformed_record_is_dropped_when_its_chunk_is_encoded() -> None:
    plog = ListLog(flush_seconds=60.0)
    plog.append([record(1), record(2, score="not a number"), record(3)])
    plog._encode_ahead()
    assert plog.stats().dropped == 1
    plog.close()
    assert plog.stored == ["r1:0.5", "r3:0.5"]


def test_parquet_log_reads_back_every_record_written_across_ticks(tmp_path: Path) -> None:
    plog = ParquetPredictionLog(tmp_path, flush_seconds=0.5, compact_every_s=None)
    for i in range(30):
        plog.append([record(i)])
        time.sleep(0.02)  # 30 records over ~12 ticks and a write or two
    _wait_for(lambda: plog.stats().written > 0)
    plog.close()
    frame = plog.read()
    assert frame["request_id"].tolist() == [f"r{i}" for i in range(30)]
