"""The journal: frames round-trip, a torn tail costs only itself, live journals are not
claimed, and a dead writer's records are replayed once, whatever instant it died."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from mlsd.predlog import ParquetPredictionLog, PredictionRecord
from mlsd.predlog.journal import DeadJournal, Journal, claim_dead, read_segment

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
NAMES = ("amount", "tx_count_1d")


def record(i: int, **overrides: object) -> PredictionRecord:
    fields: dict[str, object] = {
        "request_id": f"r{i}",
        "ts": T0 + timedelta(microseconds=i),
        "model": "fraud",
        "version": "1",
        "features": [float(i), None],
        "score": i / 100,
        "decision": "legit",
        "threshold": 0.5,
        "latency_ms": 1.5,
        "feature_names": NAMES,
        "transaction_id": i,
        "customer_id": 7,
        "terminal_id": None,
        "tx_time": T0 - timedelta(seconds=i),
    }
    fields.update(overrides)
    return PredictionRecord(**fields)  # type: ignore[arg-type]


def test_frames_round_trip_every_field(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    written = [
        record(1),
        record(2, features={"amount": 3.0, "risk": None}, feature_names=None),
        record(3, degraded=True, endpoint="v2", variant="shadow", tx_time=None),
        record(
            4, features=np.array([1.0, 2.0]), score=np.float32(0.25), transaction_id=np.int64(9)
        ),
    ]
    journal.write(written[:2], 1)
    journal.write(written[2:], 3)
    sealed = journal.seal()
    assert sealed is not None
    read = list(read_segment(sealed))
    assert [seq for seq, _ in read] == [1, 2, 3, 4]
    assert [r.request_id for _, r in read] == ["r1", "r2", "r3", "r4"]
    first = read[0][1]
    assert (first.ts, first.tx_time, first.features, first.feature_names) == (
        written[0].ts, written[0].tx_time, [1.0, None], NAMES
    )  # fmt: skip
    assert read[1][1].features == {"amount": 3.0, "risk": None}
    assert read[1][1].feature_names is None
    assert (read[2][1].degraded, read[2][1].endpoint, read[2][1].variant) == (True, "v2", "shadow")
    assert read[3][1].features == [1.0, 2.0]  # numpy values journaled as plain floats
    assert (read[3][1].score, read[3][1].transaction_id) == (0.25, 9)
    journal.close(clean=True)


def test_feature_names_are_written_once_per_segment(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.write([record(1)], 1)
    one = journal._segment.size
    journal.write([record(2)], 2)
    assert journal._segment.size - one < one - len("".join(NAMES)), "names not repeated"
    sealed = journal.seal()
    journal.write([record(3)], 3)  # a new segment writes its own tables
    fresh = journal.seal()
    assert sealed is not None
    assert fresh is not None
    assert [r.feature_names for _, r in read_segment(fresh)] == [NAMES]
    journal.close(clean=True)


def test_a_torn_tail_costs_only_the_torn_frame(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    for i in range(1, 4):
        journal.write([record(i)], i)
    sealed = journal.seal()
    assert sealed is not None
    data = sealed.read_bytes()
    sealed.write_bytes(data[:-5])
    assert [seq for seq, _ in read_segment(sealed)] == [1, 2]
    corrupt = bytearray(data)
    corrupt[-3] ^= 0xFF  # a flipped byte fails the frame's crc
    sealed.write_bytes(bytes(corrupt))
    assert [seq for seq, _ in read_segment(sealed)] == [1, 2]
    journal.close(clean=True)


def test_a_live_journal_is_never_claimed_a_closed_dirty_one_is(tmp_path: Path) -> None:
    live = Journal(tmp_path)
    live.write([record(1)], 1)
    assert claim_dead(tmp_path) == []
    live.close(clean=False)  # what a kill leaves: files, and no lock held
    dead = claim_dead(tmp_path)
    assert [d.id for d in dead] == [live.id]
    assert claim_dead(tmp_path) == [], "a claimed journal is locked by its claimer"
    dead[0].remove()
    assert sorted(os.listdir(tmp_path)) == []


def test_a_clean_close_leaves_no_journal(tmp_path: Path) -> None:
    plog = ParquetPredictionLog(tmp_path / "p", flush_seconds=60, compact_every_s=None)
    plog.append([record(i) for i in range(3)])
    plog.close()
    assert os.listdir(tmp_path / "p" / ".journal") == []


def _dead_writer(root: Path, records: list[PredictionRecord], *, stored: int) -> None:
    """A writer that stored its first `stored` records, journaled the rest, and died
    before deleting any segment (the widest window a kill can hit)."""
    plog = ParquetPredictionLog(root, flush_seconds=60, compact_every_s=None)
    journal = plog._journal
    assert journal is not None
    journal.discard = lambda segments: None  # type: ignore[method-assign]
    plog.append(records[:stored])
    plog.flush()
    plog.append(records[stored:])
    plog._closed = True  # stop the flusher without writing (as a kill would)
    plog._wake.set()
    plog._thread.join()
    journal.close(clean=False)
    plog._release()


def test_replay_stores_only_what_the_dead_writer_had_not(tmp_path: Path) -> None:
    records = [record(i) for i in range(10)]
    _dead_writer(tmp_path, records, stored=4)
    assert len(ParquetPredictionLog(tmp_path, journal=False, compact_every_s=None).read()) == 4
    plog = ParquetPredictionLog(tmp_path, flush_seconds=60, compact_every_s=None)
    assert plog.stats().replayed == 6
    plog.close()
    frame = plog.read()
    assert sorted(frame["request_id"]) == sorted(r.request_id for r in records)
    assert os.listdir(tmp_path / ".journal") == []


def test_a_replay_killed_after_storing_is_not_doubled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [record(i) for i in range(6)]
    _dead_writer(tmp_path, records, stored=2)
    monkeypatch.setattr(DeadJournal, "remove", DeadJournal.release)  # dies before deleting
    first = ParquetPredictionLog(tmp_path, flush_seconds=60, compact_every_s=None)
    first.close()
    monkeypatch.undo()
    again = ParquetPredictionLog(tmp_path, flush_seconds=60, compact_every_s=None)
    assert again.stats().replayed == 0
    again.close()
    assert sorted(again.read()["request_id"]) == sorted(r.request_id for r in records)


def test_replay_across_midnight_and_compaction(tmp_path: Path) -> None:
    day_one = T0.replace(hour=23, minute=59, second=59)
    records = [record(i, ts=day_one + timedelta(milliseconds=400 * i)) for i in range(8)]
    _dead_writer(tmp_path, records, stored=5)
    ParquetPredictionLog(tmp_path, journal=False, compact_every_s=None).compact(day_one.date())
    plog = ParquetPredictionLog(tmp_path, flush_seconds=60, compact_every_s=None)
    assert plog.stats().replayed == 3
    plog.close()
    ids = plog.read()["request_id"].tolist()
    assert sorted(ids) == sorted(r.request_id for r in records)


def test_frames_past_the_mapping_or_without_one_are_written_with_pwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Journal, "CAPACITY", 700)  # two frames fit, the rest go past it
    small = Journal(tmp_path / "small")
    for i in range(1, 6):
        small.write([record(i)], i)
    held = small._segment.size
    assert held > 700
    sealed = small.seal()
    assert sealed is not None
    assert sealed.stat().st_size == held, "cut to what it holds"
    assert [seq for seq, _ in read_segment(sealed)] == [1, 2, 3, 4, 5]
    small.close(clean=True)

    def no_room(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_room)
    unmapped = Journal(tmp_path / "unmapped")
    assert unmapped._segment.map is None
    unmapped.write([record(1), record(2)], 1)
    unmapped.close(clean=False)
    dead = claim_dead(tmp_path / "unmapped")
    assert [[seq for seq, _ in batch] for batch in dead[0].batches()] == [[1, 2]]
    dead[0].remove()


def test_a_killed_writers_mapped_segment_replays_up_to_its_zeros(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.write([record(1), record(2)], 1)
    segment = journal._segment.path
    assert segment.stat().st_size == Journal.CAPACITY  # reserved, mostly zeros
    assert [seq for seq, _ in read_segment(segment)] == [1, 2]  # read while mapped
    journal.close(clean=False)
    assert segment.stat().st_size < 1000, "cut to what it holds at close"


def test_a_failed_replay_raises_and_keeps_the_journal_for_the_next_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsd.errors import UnavailableError

    records = [record(i) for i in range(4)]
    _dead_writer(tmp_path, records, stored=0)

    def down(self: ParquetPredictionLog, chunks: object, mark: object) -> None:
        raise UnavailableError("disk gone")

    monkeypatch.setattr(ParquetPredictionLog, "_store", down)
    with pytest.raises(UnavailableError, match="disk gone"):
        ParquetPredictionLog(tmp_path, flush_seconds=60, compact_every_s=None)
    monkeypatch.undo()
    plog = ParquetPredictionLog(tmp_path, flush_seconds=60, compact_every_s=None)
    assert plog.stats().replayed == 4
    plog.close()
    assert len(plog.read()) == 4


def test_a_stop_with_the_store_down_keeps_the_buffer_for_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping while the storage is down (disk full, database gone) used to lose the whole
    buffer and end in a traceback; now the records wait in the journal and are replayed."""
    from mlsd.errors import UnavailableError

    root = tmp_path / "predictions"
    plog = ParquetPredictionLog(root, flush_seconds=60, compact_every_s=None)
    for i in range(50):
        plog.append([record(i)])

    def down(*args: object, **kwargs: object) -> None:
        raise UnavailableError("no space left on device")

    monkeypatch.setattr(plog, "_store", down)
    with caplog.at_level("WARNING", logger="mlsd.predlog.base"):
        plog.close()  # no exception: a stop is not the place to fail
    assert any("50 records kept in the journal" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    again = ParquetPredictionLog(root, flush_seconds=60, compact_every_s=None)
    try:
        assert again.stats().replayed == 50
        frame = again.read()
        assert sorted(frame["request_id"]) == sorted(record(i).request_id for i in range(50))
    finally:
        again.close()
