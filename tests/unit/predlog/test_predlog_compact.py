"""Compaction of the Parquet prediction log: every record exactly once, at every crash point."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlsd.predlog import ParquetPredictionLog, PredictionRecord
from mlsd.predlog import compact as compaction
from mlsd.predlog.compact import compact_before, compact_day, live_files

DAY1 = date(2026, 5, 1)
DAY2 = date(2026, 5, 2)


class Crash(BaseException):
    """A simulated process death: nothing in the code under test catches it."""


def record(i: int, day: date) -> PredictionRecord:
    ts = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=i)
    return PredictionRecord(
        request_id=f"{day}-{i}", ts=ts, model="fraud", version=str(1 + i % 2),
        features={"amount": float(i), "risk": None if i % 5 == 0 else i / 7},
        score=(i % 100) / 100, decision="fraud" if i % 3 == 0 else "legit", threshold=0.5,
        latency_ms=1.5, degraded=i % 4 == 0, endpoint="v2" if i % 2 else "score",
    )  # fmt: skip


def open_log(root: Path, **kw: Any) -> ParquetPredictionLog:
    kw.setdefault("compact_every_s", None)
    return ParquetPredictionLog(root, flush_seconds=60, **kw)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Two past days of 6 flushes each (one flush spans both days): 13 part files."""
    root = tmp_path / "predictions"
    plog = open_log(root)
    i = 0
    for _ in range(6):
        plog.append([record(i + j, DAY1) for j in range(7)])
        plog.append([record(i + j, DAY2) for j in range(3)])
        plog.flush()
        i += 7
    plog.append([record(1000, DAY1)])
    plog.flush()
    plog.close()
    return root


def snapshot(root: Path) -> pd.DataFrame:
    plog = open_log(root)
    try:
        frame = plog.read()
    finally:
        plog.close()
    frame["features"] = frame["features"].map(lambda d: sorted(d.items()))
    return frame.sort_values("request_id").reset_index(drop=True)


def names(root: Path, day: date) -> list[str]:
    return sorted(p.name for p in (root / f"date={day}").iterdir() if p.name != ".compact.lock")


def assert_same(before: pd.DataFrame, root: Path) -> None:
    after = snapshot(root)
    assert after["request_id"].is_unique
    pd.testing.assert_frame_equal(before, after)


def test_compaction_keeps_every_record_once(root: Path) -> None:
    before = snapshot(root)
    assert len(before) == 6 * 10 + 1
    assert len(names(root, DAY1)) == 7
    assert len(names(root, DAY2)) == 6
    results = compact_before(root, today=DAY2)  # DAY2 is "today": left alone
    assert [(r.day, r.merged_files, r.records) for r in results] == [(DAY1, 7, 43)]
    assert [n.split("-")[0] for n in names(root, DAY1)] == ["compact"]
    assert len(names(root, DAY2)) == 6
    assert_same(before, root)
    compact_before(root, today=DAY2 + timedelta(days=1))
    assert len(names(root, DAY2)) == 1
    assert_same(before, root)
    again = compact_day(root, DAY1)  # one live file: nothing to do
    assert (again.merged_files, again.deleted_files) == (0, 0)


def test_late_parts_are_merged_with_the_compact_file(root: Path) -> None:
    compact_day(root, DAY1)
    plog = open_log(root)
    plog.append([record(2000, DAY1), record(2001, DAY1)])
    plog.close()
    before = snapshot(root)
    assert len(names(root, DAY1)) == 2
    result = compact_day(root, DAY1)
    assert (result.merged_files, result.records) == (2, 45)
    assert len(names(root, DAY1)) == 1
    assert_same(before, root)


@pytest.mark.parametrize("deleted_before_crash", [0, 3, 6])
def test_a_crash_while_deleting_merged_parts(
    root: Path, monkeypatch: pytest.MonkeyPatch, deleted_before_crash: int
) -> None:
    before = snapshot(root)
    real = compaction._delete
    calls = {"n": 0}

    def dying_delete(path: Path) -> bool:
        if path.name.startswith("part-"):
            if calls["n"] == deleted_before_crash:
                raise Crash
            calls["n"] += 1
        return real(path)

    monkeypatch.setattr(compaction, "_delete", dying_delete)
    with pytest.raises(Crash):
        compact_day(root, DAY1)
    monkeypatch.undo()
    on_disk = names(root, DAY1)
    assert sum(n.startswith("compact-") for n in on_disk) == 1
    assert sum(n.startswith("part-") for n in on_disk) == 7 - deleted_before_crash
    assert_same(before, root)  # merged file and its leftover parts: each record once
    result = compact_day(root, DAY1)  # recovery: the dead parts go, nothing is re-merged
    assert (result.merged_files, result.deleted_files) == (0, 7 - deleted_before_crash)
    assert [n.split("-")[0] for n in names(root, DAY1)] == ["compact"]
    assert_same(before, root)


def test_a_crash_before_the_commit(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(root)

    def dying_commit(tmp: Path, final: Path) -> None:
        raise Crash

    monkeypatch.setattr(compaction, "_commit", dying_commit)
    with pytest.raises(Crash):
        compact_day(root, DAY1)
    monkeypatch.undo()
    on_disk = names(root, DAY1)
    assert sum(n.startswith(".compact-") for n in on_disk) == 1, "the merged file, uncommitted"
    assert sum(n.startswith("part-") for n in on_disk) == 7
    assert_same(before, root)  # the temporary file is not read
    compact_day(root, DAY1)
    assert [n.split("-")[0] for n in names(root, DAY1)] == ["compact"]
    assert_same(before, root)


def test_a_crash_while_writing_the_merged_file(root: Path) -> None:
    before = snapshot(root)
    stale = root / f"date={DAY1}" / ".compact-20260502T000000000000-deadbeef.parquet.tmp"
    stale.write_bytes(b"PAR1 half a file")  # what a process killed mid-write leaves
    assert_same(before, root)
    compact_day(root, DAY1)
    assert not stale.exists()
    assert_same(before, root)


def test_a_crash_between_two_compactions_of_the_same_day(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compact_day(root, DAY1)
    plog = open_log(root)
    plog.append([record(3000, DAY1)])
    plog.close()
    before = snapshot(root)

    def dying_delete(path: Path) -> bool:
        raise Crash

    monkeypatch.setattr(compaction, "_delete", dying_delete)
    with pytest.raises(Crash):
        compact_day(root, DAY1)  # commits compact #2 (replacing compact #1 + the new part)
    monkeypatch.undo()
    assert sum(n.startswith("compact-") for n in names(root, DAY1)) == 2
    assert_same(before, root)
    compact_day(root, DAY1)
    assert len(names(root, DAY1)) == 1
    assert_same(before, root)


def test_a_stopped_compaction_commits_nothing(root: Path) -> None:
    before = snapshot(root)
    result = compact_day(root, DAY1, stop=lambda: True)
    assert result.output is None
    assert len(names(root, DAY1)) == 7
    assert_same(before, root)


def test_a_held_day_lock_skips_the_day(root: Path) -> None:
    with compaction._day_lock(root / f"date={DAY1}") as locked:
        assert locked
        assert compact_day(root, DAY1).skipped
    assert not compact_day(root, DAY1).skipped


def test_readers_in_other_processes_never_miss_or_double(root: Path) -> None:
    """Another log instance (a separate reader) reads while compactions commit and delete."""
    expected = len(snapshot(root))
    reader = open_log(root)
    counts: list[int] = []
    done = threading.Event()

    def read_loop() -> None:
        while not done.is_set():
            counts.append(len(reader.read()))

    thread = threading.Thread(target=read_loop)
    thread.start()
    try:
        writer = open_log(root)
        for k in range(8):  # keep adding late parts and compacting them in
            writer.append([record(5000 + k, DAY1)])
            writer.flush()
            expected += 1
            compact_day(root, DAY1)
            time.sleep(0.005)
        writer.close()
    finally:
        done.set()
        thread.join()
        reader.close()
    assert counts, "the reader never read"
    assert min(counts) >= 61
    assert max(counts) <= expected
    assert len(snapshot(root)) == expected


def test_past_days_are_compacted_when_the_log_opens(root: Path) -> None:
    before = snapshot(root)
    plog = open_log(root, compact_every_s=3600.0)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(names(root, DAY2)) > 1:
            time.sleep(0.02)
        assert len(names(root, DAY1)) == 1
        assert len(names(root, DAY2)) == 1
        assert plog.files() == live_files(root)
        assert len(plog.files()) == 2
    finally:
        plog.close()
    assert_same(before, root)


def test_compact_method_and_bad_interval(root: Path) -> None:
    plog = open_log(root)
    try:
        assert plog.compact(DAY2).merged_files == 6
        assert plog.compact(date(2020, 1, 1)).merged_files == 0  # no such day
    finally:
        plog.close()
    with pytest.raises(ValueError, match="compact_every_s"):
        open_log(root, compact_every_s=0)
