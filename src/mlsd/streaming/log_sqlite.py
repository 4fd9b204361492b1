"""The embedded event log: one SQLite file (WAL, fsync on every commit), no server.

Why SQLite rather than a segment file per partition: a consumer group shared by
several processes needs its state (who holds which events, what is committed)
changed atomically by whoever polls; SQLite gives that in one transaction across
processes, survives `kill -9` (WAL with `synchronous=FULL`: a publish or a commit
that returned is on disk), and indexes append time for replay-from-a-time. A
segment file would need its own lock protocol and index for the same guarantees.

Events are stored a chunk per row (`chunks`): the records one publish call gives a
partition, up to `CHUNK` of them, packed in one blob with their base offset (offsets
stay per record: base, base + 1, ...) and their latest timestamp, which the time index
serves. One row per record cost ~5 µs a record (a B-tree insert and its time-index
entry each); a chunk costs one of each per publish and partition. A new file has pages
of `PAGE_SIZE` bytes: a chunk of 512 decisions (~130 kB) spans 8 pages there against 33
of SQLite's default 4 kB, and a publish of 2,048 decisions went from 2.0 to 1.4 µs a
record (2026-12-03). A file written by the one-row-per-event format (mlsd before this
layout, table `events`) is converted in place the first time it is opened, offsets kept.

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
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from pathlib import Path

import numpy as np

from mlsd.errors import ConfigError, ConflictError
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
CREATE TABLE IF NOT EXISTS chunks (
    topic TEXT NOT NULL, part INTEGER NOT NULL, base INTEGER NOT NULL, n INTEGER NOT NULL,
    max_ts INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (topic, part, base));
CREATE INDEX IF NOT EXISTS chunks_time ON chunks (topic, part, max_ts);
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
#: Records per chunk at most: a bigger publish to one partition is cut into several.
CHUNK = 512
#: Page size of a new file (an existing one keeps its own: SQLite fixes it at creation).
PAGE_SIZE = 16384
#: `PRAGMA user_version` of a file in this layout (0: new, or the one-row-per-event layout).
_FORMAT = 2


def pack(records: Sequence[tuple[str, bytes, int]]) -> bytes:
    """A chunk's blob: n timestamps (int64), n key and n value lengths in bytes (uint32),
    the keys' UTF-8 bytes, then the values."""
    keys = [k for k, _, _ in records]
    text = "".join(keys)
    key_bytes = text.encode()
    if len(key_bytes) == len(text):  # ASCII keys (customer ids): a character is a byte
        key_lens = [len(k) for k in keys]
    else:
        key_lens = [len(k.encode()) for k in keys]
    values = [v for _, v, _ in records]
    return b"".join(
        (
            np.array([t for _, _, t in records], np.int64).tobytes(),
            np.array(key_lens, np.uint32).tobytes(),
            np.array([len(v) for v in values], np.uint32).tobytes(),
            key_bytes,
            *values,
        )
    )


def unpack(
    body: bytes, n: int, first: int = 0, stop: int | None = None
) -> Iterator[tuple[str, bytes, int]]:
    """(key, value, timestamp) of the records `first` to `stop` of a chunk of `n`."""
    stop = n if stop is None else min(stop, n)
    ts = np.frombuffer(body, np.int64, n, 0).tolist()
    key_ends = list(accumulate(np.frombuffer(body, np.uint32, n, 8 * n).tolist(), initial=0))
    keys_at = 16 * n
    value_ends = list(
        accumulate(
            np.frombuffer(body, np.uint32, n, 12 * n).tolist(), initial=keys_at + key_ends[-1]
        )
    )
    raw = body[keys_at : keys_at + key_ends[-1]]
    text = raw.decode()
    if len(text) != len(raw):  # not ASCII: the offsets are bytes, decode key by key
        keys = [raw[key_ends[i] : key_ends[i + 1]].decode() for i in range(first, stop)]
    else:
        keys = [text[key_ends[i] : key_ends[i + 1]] for i in range(first, stop)]
    for j, i in enumerate(range(first, stop)):
        yield keys[j], body[value_ends[i] : value_ends[i + 1]], ts[i]


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
        self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # before WAL: a no-op on a file
        self._db.execute("PRAGMA journal_mode=WAL")  # that exists
        self._db.execute("PRAGMA synchronous=FULL")
        try:
            with self._lock:
                self._db.executescript(_SCHEMA)
                self._convert()
        except BaseException:
            self._db.close()
            raise
        self._partitions: dict[str, int] = {}
        self._closed = False

    def _convert(self) -> None:
        """Repack a file of the one-row-per-event layout (table `events`) into chunks, in
        one transaction (offsets and timestamps kept), and mark the file's format."""
        db = self._db
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version == _FORMAT:
            return
        if version != 0:
            raise ConfigError(
                f"the event log {self.path} is in format {version}, which this mlsd does not"
                f" read (it reads formats 0 and {_FORMAT}): open it with the mlsd that wrote it",
                field="event_log",
            )
        self._begin()
        try:
            old = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
            ).fetchone()
            if old is not None:
                rows = db.execute(
                    "SELECT topic, part, off, key, value, ts FROM events ORDER BY topic, part, off"
                )
                run: list[tuple[str, bytes, int]] = []
                at: tuple[str, int, int] = ("", -1, -1)  # the run's topic, partition, base
                chunks = []
                for topic, part, off, key, value, ts in rows:
                    if (topic, part) != at[:2] or off != at[2] + len(run) or len(run) >= CHUNK:
                        if run:
                            chunks.append((*at, run))
                        run, at = [], (topic, int(part), int(off))
                    run.append((key, bytes(value), int(ts)))
                if run:
                    chunks.append((*at, run))
                db.executemany(
                    "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)",
                    [(t, p, b, len(r), max(x[2] for x in r), pack(r)) for t, p, b, r in chunks],
                )
                db.execute("DROP TABLE events")
            db.execute(f"PRAGMA user_version = {_FORMAT}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

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
        parts: dict[int, list[tuple[str, bytes, int]]] = {}
        for record in checked:
            ts = stamp if record.timestamp_ms is None else record.timestamp_ms
            parts.setdefault(partition_for(record.key, count), []).append(
                (record.key, bytes(record.value), ts)
            )
        with self._lock:
            self._begin()
            try:
                rows = []
                for part, got in parts.items():
                    base = self._head(topic, part)
                    for i in range(0, len(got), CHUNK):
                        chunk = got[i : i + CHUNK]
                        newest = max(ts for _, _, ts in chunk)
                        rows.append((topic, part, base + i, len(chunk), newest, pack(chunk)))
                self._db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(checked)

    def _head(self, topic: str, part: int) -> int:
        """The next offset of a partition."""
        with self._lock:
            row = self._db.execute(
                "SELECT base + n FROM chunks WHERE topic = ? AND part = ?"
                " ORDER BY base DESC LIMIT 1",
                (topic, part),
            ).fetchone()
        return 0 if row is None else int(row[0])

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
                # the first event stamped >= since_ms is in the first chunk holding one
                row = self._db.execute(
                    "SELECT base, n, body FROM chunks WHERE topic = ? AND part = ?"
                    " AND max_ts >= ? ORDER BY base LIMIT 1",
                    (topic, partition, since_ms),
                ).fetchone()
                if row is None:
                    return []
                base, n, body = row
                stamps = np.frombuffer(body, np.int64, n, 0)
                start = int(base) + int(np.argmax(stamps >= since_ms))
            return self._read(topic, partition, start, None, limit)

    def delete_topic(self, topic: str) -> None:
        check_name(topic, "topic")
        with self._lock:
            self._begin()
            for table, column in (("chunks", "topic"), ("positions", "topic"), ("claims", "topic")):
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
                    events = self._take_new(topic, group, member, max_events, now + lease_ms, now)
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
        self, topic: str, group: str, member: str, budget: int, deadline: int, now: int
    ) -> list[Event]:
        """New events, from the partitions no other member holds a live claim on: a
        partition's events go out in order, a key's never overtaking its earlier ones (a
        restarted processor took a dead one's partition at once, its claimed events
        re-delivered a lease later, after newer ones of the same customers: their window
        features missed the payments before them, 2026-12-03)."""
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
        held = {
            part
            for (part,) in db.execute(
                "SELECT DISTINCT part FROM claims WHERE grp = ? AND topic = ? AND member != ?"
                " AND deadline >= ?",
                (group, topic, member, now),
            ).fetchall()
        }
        # rotate the starting partition so one busy partition cannot starve the others
        first = int(time.monotonic_ns() // 1000) % parts
        events: list[Event] = []
        for i in range(parts):
            part = (first + i) % parts
            if len(events) >= budget:
                break
            if part in held:
                continue
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
        """The events of `part` from offset `start` to `stop` (None: the end), `limit` at most."""
        end = min(stop if stop is not None else 2**62, start + limit)
        rows = self._db.execute(
            "SELECT base, n, body FROM chunks WHERE topic = ? AND part = ? AND base < ?"
            " AND base >= (SELECT IFNULL(MAX(base), 0) FROM chunks"
            " WHERE topic = ? AND part = ? AND base <= ?) ORDER BY base",
            (topic, part, end, topic, part, start),
        ).fetchall()
        events: list[Event] = []
        for base, n, body in rows:
            first = max(start - base, 0)
            for i, (key, value, ts) in enumerate(unpack(body, n, first, end - base), base + first):
                events.append(Event(topic, part, i, key, value, ts))
        return events

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
