"""The embedded event log: one SQLite file (WAL, fsync on every commit), no server.

Why SQLite rather than a segment file per partition: a consumer group shared by
several processes needs its state (who holds which events, what is committed)
changed atomically by whoever polls; SQLite gives that in one transaction across
processes, survives `kill -9` (WAL with `synchronous=FULL`: a publish or a commit
that returned is on disk), and indexes append time for replay-from-a-time. A
segment file would need its own lock protocol and index for the same guarantees.

Groups lease events in claims (one row per polled batch and partition: a range of
offsets, its member and a deadline). A member's poll extends its own claims; a claim
whose deadline passed (its member died or stopped polling) goes to the next member
that polls, before any new event. Commit deletes the member's claims up to the
committed offsets (a claim committed in part keeps its rest); the group's committed
position is the start of its oldest claim.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from mlsd.errors import ConflictError
from mlsd.streaming.log import (
    DEFAULT_SESSION_TIMEOUT_S,
    Event,
    Record,
    by_partition,
    check_name,
    check_partitions,
    check_record,
    check_replay,
    check_session_timeout,
    now_ms,
    partition_for,
    unknown_topic,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    topic TEXT NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL,
    ts INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (topic, part, off)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_time ON events (topic, part, ts);
CREATE TABLE IF NOT EXISTS positions (
    grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL,
    cursor INTEGER NOT NULL, PRIMARY KEY (grp, topic, part)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (
    id INTEGER PRIMARY KEY, grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL,
    start INTEGER NOT NULL, stop INTEGER NOT NULL, member TEXT NOT NULL,
    deadline INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS claims_group ON claims (grp, topic, deadline);
"""
_IDLE_WAIT_S = (0.002, 0.05)  # poll back-off between empty reads: first, longest


class SqliteEventLog:
    """The embedded `EventLog` in one SQLite file, shared safely by several processes."""

    name = "embedded"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._lock:
            self._db.executescript(_SCHEMA)
        self._partitions: dict[str, int] = {}
        self._closed = False

    def _begin(self, *, durable: bool = True) -> None:
        """Start a write transaction; `durable=False` skips its fsync (a lease, which a
        power cut may only roll back into a redelivery); the next durable commit
        fsyncs the write-ahead log with everything before it."""
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute("BEGIN IMMEDIATE")

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        check_name(topic, "topic")
        check_partitions(partitions)
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO topics (name, partitions) VALUES (?, ?)", (topic, partitions)
            )
        have = self.partitions(topic)
        if have != partitions:
            raise ConflictError(
                f"topic {topic!r} exists with {have} partitions, not {partitions}", field="topic"
            )

    def partitions(self, topic: str) -> int:
        check_name(topic, "topic")
        if topic in self._partitions:
            return self._partitions[topic]
        with self._lock:
            row = self._db.execute("SELECT partitions FROM topics WHERE name = ?", (topic,))
            found = row.fetchone()
        if found is None:
            raise unknown_topic(topic, self.name)
        self._partitions[topic] = int(found[0])
        return self._partitions[topic]

    def publish(self, topic: str, records: Iterable[Record]) -> int:
        count = self.partitions(topic)
        checked = [check_record(r) for r in records]
        if not checked:
            return 0
        stamp = now_ms()
        with self._lock:
            self._begin()
            try:
                heads: dict[int, int] = {}
                rows = []
                for record in checked:
                    part = partition_for(record.key, count)
                    off = heads[part] if part in heads else self._head(topic, part)
                    heads[part] = off + 1
                    ts = stamp if record.timestamp_ms is None else record.timestamp_ms
                    rows.append((topic, part, off, ts, record.key, bytes(record.value)))
                self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(checked)

    def _head(self, topic: str, part: int) -> int:
        """The next offset of a partition."""
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(off) FROM events WHERE topic = ? AND part = ?", (topic, part)
            ).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def consumer(
        self, topic: str, group: str, *, session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S
    ) -> SqliteConsumer:
        self.partitions(topic)
        check_name(group, "group")
        return SqliteConsumer(self, topic, group, check_session_timeout(session_timeout_s))

    def replay(
        self,
        topic: str,
        partition: int,
        *,
        offset: int | None = None,
        since_ms: int | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        check_replay(partition, self.partitions(topic), offset, since_ms)
        with self._lock:
            start = offset or 0
            if since_ms is not None:
                row = self._db.execute(
                    "SELECT MIN(off) FROM events WHERE topic = ? AND part = ? AND ts >= ?",
                    (topic, partition, since_ms),
                ).fetchone()
                if row[0] is None:
                    return []
                start = int(row[0])
            rows = self._db.execute(
                "SELECT off, key, value, ts FROM events WHERE topic = ? AND part = ? AND off >= ?"
                " ORDER BY off LIMIT ?",
                (topic, partition, start, limit),
            ).fetchall()
        return [Event(topic, partition, o, k, v, t) for o, k, v, t in rows]

    def delete_topic(self, topic: str) -> None:
        check_name(topic, "topic")
        with self._lock:
            self._begin()
            for table, column in (("events", "topic"), ("positions", "topic"), ("claims", "topic")):
                self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (topic,))
            self._db.execute("DELETE FROM topics WHERE name = ?", (topic,))
            self._db.execute("COMMIT")
        self._partitions.pop(topic, None)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    # -- group state, used by SqliteConsumer under the lock in one transaction --

    def _claim(
        self, topic: str, group: str, member: str, max_events: int, lease_ms: int
    ) -> list[Event]:
        now = now_ms()
        db = self._db
        with self._lock:
            self._begin(durable=False)
            try:
                db.execute(
                    "UPDATE claims SET deadline = ? WHERE grp = ? AND topic = ? AND member = ?",
                    (now + lease_ms, group, topic, member),
                )
                events = self._take_expired(topic, group, member, max_events, now + lease_ms, now)
                if not events:
                    events = self._take_new(topic, group, member, max_events, now + lease_ms)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return events

    def _take_expired(
        self, topic: str, group: str, member: str, budget: int, deadline: int, now: int
    ) -> list[Event]:
        expired = self._db.execute(
            "SELECT id, part, start, stop FROM claims WHERE grp = ? AND topic = ? AND deadline < ?"
            " ORDER BY part, start",
            (group, topic, now),
        ).fetchall()
        events: list[Event] = []
        for claim_id, part, start, stop in expired:
            if events and len(events) + (stop - start) > budget:
                break
            self._db.execute(
                "UPDATE claims SET member = ?, deadline = ? WHERE id = ?",
                (member, deadline, claim_id),
            )
            events += self._read(topic, part, start, stop, stop - start)
        return events

    def _take_new(
        self, topic: str, group: str, member: str, budget: int, deadline: int
    ) -> list[Event]:
        db = self._db
        parts = self.partitions(topic)
        db.executemany(
            "INSERT OR IGNORE INTO positions (grp, topic, part, cursor) VALUES (?, ?, ?, 0)",
            [(group, topic, p) for p in range(parts)],
        )
        cursors = dict(
            db.execute(
                "SELECT part, cursor FROM positions WHERE grp = ? AND topic = ?", (group, topic)
            ).fetchall()
        )
        # rotate the starting partition so one busy partition cannot starve the others
        first = int(time.monotonic_ns() // 1000) % parts
        events: list[Event] = []
        for i in range(parts):
            part = (first + i) % parts
            if len(events) >= budget:
                break
            got = self._read(topic, part, cursors[part], None, budget - len(events))
            if not got:
                continue
            stop = got[-1].offset + 1
            db.execute(
                "INSERT INTO claims (grp, topic, part, start, stop, member, deadline)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (group, topic, part, cursors[part], stop, member, deadline),
            )
            db.execute(
                "UPDATE positions SET cursor = ? WHERE grp = ? AND topic = ? AND part = ?",
                (stop, group, topic, part),
            )
            events += got
        return events

    def _read(self, topic: str, part: int, start: int, stop: int | None, limit: int) -> list[Event]:
        rows = self._db.execute(
            "SELECT off, key, value, ts FROM events WHERE topic = ? AND part = ? AND off >= ?"
            " AND off < ? ORDER BY off LIMIT ?",
            (topic, part, start, stop if stop is not None else 2**62, limit),
        ).fetchall()
        return [Event(topic, part, o, k, v, t) for o, k, v, t in rows]

    def _commit(self, topic: str, group: str, member: str, events: Sequence[Event]) -> bool:
        held = True
        with self._lock:
            self._begin()
            try:
                for part, batch in by_partition(events).items():
                    top = max(e.offset for e in batch)
                    # lost: another member holds these events now (its lease took them)
                    taken = self._db.execute(
                        "SELECT COUNT(*) FROM claims WHERE grp = ? AND topic = ? AND part = ?"
                        " AND member != ? AND start <= ? AND stop > ?",
                        (group, topic, part, member, top, top),
                    ).fetchone()[0]
                    held = held and taken == 0
                    self._db.execute(
                        "DELETE FROM claims WHERE grp = ? AND topic = ? AND part = ?"
                        " AND member = ? AND stop <= ?",
                        (group, topic, part, member, top + 1),
                    )
                    self._db.execute(  # a claim committed in part keeps only its rest
                        "UPDATE claims SET start = ? WHERE grp = ? AND topic = ? AND part = ?"
                        " AND member = ? AND start <= ? AND stop > ?",
                        (top + 1, group, topic, part, member, top, top + 1),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return held

    def _release(self, topic: str, group: str, member: str) -> None:
        with self._lock:
            if not self._closed:
                self._db.execute(
                    "UPDATE claims SET deadline = 0 WHERE grp = ? AND topic = ? AND member = ?",
                    (group, topic, member),
                )

    def committed(self, topic: str, group: str) -> dict[int, int]:
        """Per partition, the offset before which every event is committed (for lag)."""
        with self._lock:
            cursors = dict(
                self._db.execute(
                    "SELECT part, cursor FROM positions WHERE grp = ? AND topic = ?", (group, topic)
                ).fetchall()
            )
            for part, start in self._db.execute(
                "SELECT part, MIN(start) FROM claims WHERE grp = ? AND topic = ? GROUP BY part",
                (group, topic),
            ).fetchall():
                cursors[part] = min(cursors.get(part, start), start)
        return {int(p): int(c) for p, c in cursors.items()}


class SqliteConsumer:
    """A member of a group on the embedded log: leases batches, commits them."""

    def __init__(self, log: SqliteEventLog, topic: str, group: str, session_s: float) -> None:
        self._log = log
        self.topic = topic
        self.group = group
        self._member = f"{group}-{uuid.uuid4().hex[:12]}"
        self._lease_ms = int(session_s * 1000)

    @property
    def member(self) -> str:
        return self._member

    def poll(self, max_events: int = 256, timeout_s: float = 1.0) -> list[Event]:
        deadline = time.monotonic() + timeout_s
        wait = _IDLE_WAIT_S[0]
        while True:
            got = self._log._claim(self.topic, self.group, self._member, max_events, self._lease_ms)
            if got or time.monotonic() >= deadline:
                return got
            time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            wait = min(wait * 2, _IDLE_WAIT_S[1])

    def commit(self, events: Sequence[Event]) -> bool:
        if not events:
            return True
        return self._log._commit(self.topic, self.group, self._member, events)

    def lag(self) -> int:
        return sum(self.lag_by_partition().values())

    def lag_by_partition(self) -> dict[str, int]:
        heads = {p: self._log._head(self.topic, p) for p in range(self._log.partitions(self.topic))}
        committed = self._log.committed(self.topic, self.group)
        return {str(p): head - committed.get(p, 0) for p, head in heads.items()}

    def close(self) -> None:
        self._log._release(self.topic, self.group, self._member)
