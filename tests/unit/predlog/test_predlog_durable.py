"""Sequence numbers and the durable mark: a caller knows when its records are stored."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlsd.predlog import ParquetPredictionLog, PredictionRecord

from .test_predlog_encode_ahead import ListLog, record


def test_append_numbers_records_and_the_mark_follows_the_writes() -> None:
    plog = ListLog(flush_seconds=60.0)
    try:
        assert plog.append([record(0), record(1)]) == 2
        assert plog.append([]) == 2
        assert plog.append([record(2)]) == 3
        assert plog.durable_seq == 0
        plog.flush()
        assert plog.durable_seq == 3
        assert plog.stored == ["r0:0.5", "r1:0.5", "r2:0.5"]
    finally:
        plog.close()


def test_wait_durable_asks_for_a_flush_and_waits_for_it() -> None:
    plog = ListLog(flush_seconds=60.0)  # the timer alone would not write for a minute
    try:
        seq = plog.append([record(i) for i in range(5)])
        assert plog.wait_durable(seq, timeout=30.0)
        assert plog.durable_seq >= seq
        assert len(plog.stored) == 5
        assert plog.wait_durable(1, timeout=0.0), "already durable: no wait"
    finally:
        plog.close()


def test_wait_durable_times_out_while_the_store_is_down() -> None:
    plog = ListLog(flush_seconds=60.0)
    plog.down = True
    seq = plog.append([record(1)])
    assert not plog.wait_durable(seq, timeout=0.3)
    assert plog.durable_seq == 0
    plog.down = False
    assert plog.wait_durable(seq, timeout=30.0)
    plog.close()


def test_malformed_records_do_not_hold_the_mark_back() -> None:
    plog = ListLog(flush_seconds=60.0)
    try:
        seq = plog.append([record(1), record(2, score="not a number")])
        plog.flush()
        assert plog.durable_seq == seq
        assert plog.stats().dropped == 1
    finally:
        plog.close()


def test_records_dropped_for_room_get_no_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plog = ParquetPredictionLog(
        tmp_path, flush_seconds=60, flush_records=2, max_buffered=2, compact_every_s=None
    )
    monkeypatch.setattr(plog._wake, "set", lambda: None)  # keep the flusher asleep
    ts = datetime(2026, 5, 1, tzinfo=UTC)
    rec = PredictionRecord("r", ts, "m", "1", [1.0], 0.1, "legit", 0.5, 1.0)
    assert plog.append([rec, rec, rec]) == 2
    assert plog.stats().dropped == 1
    monkeypatch.undo()
    plog.close()
    assert plog.durable_seq == 2
