"""The embedded log's chunk layout: a publish per partition in one row, offsets per record,
and files of the one-row-per-event layout converted when opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mlsd.errors import ConfigError
from mlsd.streaming import Record
from mlsd.streaming.log import partition_for
from mlsd.streaming.log_sqlite import CHUNK, PAGE_SIZE, SqliteEventLog, pack, unpack

#: The layout before chunks (mlsd up to this change): one row per event.
_OLD_SCHEMA = """
CREATE TABLE topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE events (
    topic TEXT NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL,
    ts INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (topic, part, off)) WITHOUT ROWID;
CREATE INDEX events_time ON events (topic, part, ts);
CREATE TABLE positions (
    grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL,
    cursor INTEGER NOT NULL, PRIMARY KEY (grp, topic, part)) WITHOUT ROWID;
CREATE TABLE claims (
    id INTEGER PRIMARY KEY, grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL,
    start INTEGER NOT NULL, stop INTEGER NOT NULL, member TEXT NOT NULL,
    deadline INTEGER NOT NULL);
"""


def test_pack_and_unpack_keep_keys_values_and_times_of_any_range() -> None:
    records = [("c1", b"one", 5), ("käse-€", b"", 3), ("", b"\x00\xff" * 40, 9), ("c4", b"4", 1)]
    body = pack(records)
    assert list(unpack(body, 4)) == records
    assert list(unpack(body, 4, 1, 3)) == records[1:3]
    assert list(unpack(body, 4, 3, 99)) == records[3:]
    assert list(unpack(pack([]), 0)) == []


def test_a_big_publish_is_cut_in_chunks_and_read_back_across_them(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite")
    try:
        log.create_topic("t", 1)
        n = 2 * CHUNK + 7
        # times out of order: replay by time starts at the first event stamped at or after
        stamps = [(i * 7919) % 1000 for i in range(n)]
        log.publish("t", [Record(f"k{i}", b"v%d" % i, stamps[i]) for i in range(n)])
        log.publish("t", [Record("k", b"last", 2000)])
        with sqlite3.connect(log.path) as db:
            assert db.execute("SELECT n FROM chunks ORDER BY base").fetchall() == [
                (CHUNK,),
                (CHUNK,),
                (7,),
                (1,),
            ]
        events = log.replay("t", 0, limit=10 * n)
        assert [e.offset for e in events] == list(range(n + 1))
        assert [e.value for e in events[:n]] == [b"v%d" % i for i in range(n)]
        assert [e.timestamp_ms for e in events[:n]] == stamps
        middle = log.replay("t", 0, offset=CHUNK - 3, limit=6)
        assert [e.offset for e in middle] == list(range(CHUNK - 3, CHUNK + 3))
        for since in (0, 500, 999, 1000, 2000):
            first = next(i for i, e in enumerate(events) if e.timestamp_ms >= since)
            assert log.replay("t", 0, since_ms=since, limit=1)[0].offset == first
        assert log.replay("t", 0, since_ms=2001) == []
        consumer = log.consumer("t", "g")
        got = []
        while batch := consumer.poll(100, 0.0):  # claims straddle the chunks
            got += batch
            assert consumer.commit(batch)
        assert got == events
        assert consumer.lag() == 0
    finally:
        log.close()


def test_a_new_file_has_big_pages_and_keeps_them_when_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    log = SqliteEventLog(path)
    log.create_topic("t", 1)
    log.publish("t", [Record("k", b"v" * 300) for _ in range(CHUNK)])
    log.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    log = SqliteEventLog(path)
    try:
        assert len(log.replay("t", 0, limit=CHUNK + 1)) == CHUNK
    finally:
        log.close()


def test_a_file_of_the_row_per_event_layout_is_converted_offsets_kept(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_OLD_SCHEMA)
        db.execute("INSERT INTO topics VALUES ('t', 2)")
        rows = []
        for part in (0, 1):
            # a gap in partition 1 (offsets may leave gaps) and more than a chunk in 0
            offsets = range(CHUNK + 3) if part == 0 else [0, 1, 2, 10, 11]
            rows += [("t", part, o, 100 + o, f"ké{part}", b"p%do%d" % (part, o)) for o in offsets]
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute("INSERT INTO positions VALUES ('g', 't', 0, 5)")
    log = SqliteEventLog(path)
    try:
        for part in (0, 1):
            mine = [r for r in rows if r[1] == part]
            got = log.replay("t", part, limit=10_000)
            assert [(e.offset, e.timestamp_ms, e.key, e.value) for e in got] == [
                (o, ts, k, v) for _, _, o, ts, k, v in mine
            ]
        assert [e.offset for e in log.replay("t", 1, offset=3)] == [10, 11]
        assert log.replay("t", 1, since_ms=105)[0].offset == 10
        # the group's position survives: it goes on from offset 5 of partition 0
        consumer = log.consumer("t", "g")
        assert consumer.lag_by_partition() == {"0": CHUNK + 3 - 5, "1": 12}
        key0 = next(f"x{i}" for i in range(100) if partition_for(f"x{i}", 2) == 0)
        log.publish("t", [Record(key0, b"new")])
        assert log.replay("t", 0, offset=CHUNK + 3)[0].value == b"new"
    finally:
        log.close()
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "events" not in tables
        # SQLite fixes a file's page size when it creates it: the old file keeps its own
        assert db.execute("PRAGMA page_size").fetchone()[0] == 4096 != PAGE_SIZE
    SqliteEventLog(path).close()  # opened again: already converted, nothing to do


def test_a_file_of_an_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(ConfigError, match="format 99") as info:
        SqliteEventLog(path)
    assert info.value.field == "event_log"
