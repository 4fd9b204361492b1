"""The prediction log's journal: every appended record in the kernel before the answer leaves.

`BufferedLog.append` writes the records it accepts to the journal with one `os.write`
(no fsync) before it returns, so a process killed with `kill -9` loses nothing that it
had answered: the page cache outlives the process, and the next writer on the same log
replays the journal into the store. Power loss can still cost what the OS had not
written back (the journal is not fsynced on the hot path).

Layout of a journal folder (Parquet: `{root}/.journal`, PostgreSQL: `$MLSD_HOME/predlog-journal`):

- `{id}.lock`: one per live writer, held with an exclusive `flock` for the writer's life
  (created under a hidden name, locked, then renamed, so no one sees it unlocked); it
  holds the writer's pid. The Parquet log's writer process shares the lock (`writer.py`),
  so a killed writer's lock stays held until its child has finished writing: a lock held
  while its pid is gone is waited for (`claim_dead`, milliseconds), not taken for alive;
- `{id}.{n:010d}.seg`: the writer's segments, one per batch the flusher takes: the
  flusher seals the current segment when it takes the buffer and deletes it once the
  records are stored.

A writer whose lock file is not locked is dead: `claim_dead` locks it, and the new writer
replays its segments. Each stored batch carries a mark (journal id, last sequence number)
that the store keeps atomically with the records, so a replay stores only what the dead
writer had not stored: exactly once, whatever instant the kill hit. The Parquet log's
writer process reads the sealed segments it stores as frames (`read_segment_parts`: a
block's frame as a `RecordBlock`, no object per row).

A frame is `<length u32><crc32 u32>` then a marshal (version 2: plain tuples, lists,
dicts, str, bytes, int, float, bool, None; loading it runs no code) of
`(FORMAT, first sequence number, new feature-name tables, new contexts, entries)`.
What every record of one model's variant repeats (model, version, threshold, entry point,
variant, feature names) is a context, written once per segment and referred to by index,
as the feature names are; a record's feature values, when they are plain numbers, are
packed float64 bytes (one copy, no per-value object for marshal to walk). The journal is
on the scoring path: each of these halves what a frame costs there.

A `RecordBlock` (a scored batch's rows as columns, `block.py`: what the scoring path
appends) is one frame of its own, `(BLOCK_FORMAT, first sequence number, new names, new
contexts, block)`: its context once, its feature matrix and scores as raw bytes, its ids,
decisions, latencies, flags and transaction columns as plain lists; per row, only the
transaction time in µs is computed in Python. The serving path appends one block per
event-loop tick, so one frame holds the records of every request answered in that tick.
A torn or corrupt frame (power loss, a full disk) ends the replay of its segment.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import marshal
import mmap
import os
import struct
import time
import uuid
import zlib
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.predlog.block import RecordBlock, TxColumns
from mlsd.predlog.record import PredictionRecord

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
_MARSHAL_VERSION = 2
#: The frame layouts this module writes (the first item of a frame): records, a block.
FORMAT = 2
BLOCK_FORMAT = 3
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: The types of an entry's fields (features checked apart, unless packed as bytes).
_FIELDS = frozenset({str, int, float, bool, type(None), bytes, list, tuple, dict})
#: Marks an entry's feature names as absent (a features mapping, or names not given).
NO_NAMES = -1
_STR = frozenset({str})
_INT = frozenset({int})
_FLOAT = frozenset({float})
_BOOL = frozenset({bool})
#: A block's feature matrix dtypes, by the character its frame names them with.
_DTYPES = {"f": np.float32, "d": np.float64}


@dataclass(frozen=True)
class JournalMark:
    """The last sequence number of a journal that a stored batch holds."""

    journal_id: str
    seq: int


def _from_micros(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def _plain(record: PredictionRecord) -> PredictionRecord:
    """A copy of a record in marshal-able types (numpy scalars, arrays, sets become plain)."""
    features: Any = record.features
    if isinstance(features, Mapping):
        features = {str(k): None if v is None else float(v) for k, v in features.items()}
    else:
        features = [None if v is None else float(v) for v in features]
    names = None if record.feature_names is None else tuple(str(n) for n in record.feature_names)

    def opt_int(v: Any) -> int | None:
        return None if v is None else int(v)

    return PredictionRecord(
        str(record.request_id), record.ts, str(record.model), str(record.version), features,
        float(record.score), str(record.decision), float(record.threshold),
        float(record.latency_ms), bool(record.degraded), names, str(record.endpoint),
        str(record.variant), opt_int(record.transaction_id), opt_int(record.customer_id),
        opt_int(record.terminal_id), record.tx_time,
    )  # fmt: skip


@dataclass
class _Segment:
    path: Path
    fd: int
    map: mmap.mmap | None  # the file's first `capacity` bytes, shared; None: pwrite only
    capacity: int
    names: dict[int, tuple[int, object]] = field(default_factory=dict)  # id -> (index, keep)
    contexts: dict[tuple[Any, ...], int] = field(default_factory=dict)  # context -> index
    size: int = 0

    def close(self) -> None:
        """Unmap, cut the file to what it holds, close it."""
        if self.map is not None:
            self.map.close()
            self.map = None
        try:
            os.ftruncate(self.fd, self.size)
        finally:
            os.close(self.fd)


class Journal:
    """One writer's journal in `folder`: `write` on the hot path, `seal` and `discard` from
    the flusher. Not thread-safe: the log calls `write` and `seal` under its lock.

    A segment is a file of `capacity` bytes reserved with `posix_fallocate` (so a write
    into it never meets a full disk: on a MAP_SHARED mapping that would be a SIGBUS) and
    mapped shared: a frame is a copy into the mapping, no system call, and the kernel
    keeps the pages when the process dies. A frame that does not fit, or a segment that
    could not be reserved, is written with `pwrite` at the same offset instead.
    """

    #: Bytes reserved per segment: a tick of 8,000 requests/s of ~300-byte frames is 240 kB.
    CAPACITY = 4 << 20

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.id = uuid.uuid4().hex[:12]
        self.errors = 0
        hidden = self.folder / f".{self.id}.lock.tmp"
        self._lock_fd = os.open(hidden, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(self._lock_fd, f"{os.getpid()}\n".encode())  # the owner, for `claim_dead`
        self.lock_path = self.folder / f"{self.id}.lock"
        os.replace(hidden, self.lock_path)
        self._number = 0
        self._spare: _Segment | None = None
        self._segment = self._open_segment()

    @property
    def lock_fd(self) -> int:
        """The descriptor holding this writer's lock: a process given it (`pass_fds`) keeps
        the journal locked, so not replayed, for as long as it lives."""
        return self._lock_fd

    def _open_segment(self) -> _Segment:
        self._number += 1
        path = self.folder / f"{self.id}.{self._number:010d}.seg"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.posix_fallocate(fd, 0, self.CAPACITY)
            return _Segment(path, fd, mmap.mmap(fd, self.CAPACITY), self.CAPACITY)
        except OSError as exc:  # no room, or no mmap here: pwrite only
            log.warning("prediction journal %s not mapped (%s): written with pwrite", path, exc)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            return _Segment(path, fd, None, 0)

    def prepare(self) -> None:
        """Make the next segment ahead (outside the log's lock), so `seal` is quick."""
        if self._spare is None:
            self._spare = self._open_segment()

    def write(self, records: Sequence[PredictionRecord], first_seq: int) -> None:
        """Append one frame holding `records` (numbered from `first_seq`); never raises:
        a failed write is logged and counted (the records stay in the log's buffer)."""
        segment = self._segment
        try:
            if isinstance(records, RecordBlock):
                frame, added = self._block_frame(records, first_seq)
            else:
                frame, added = self._frame(records, first_seq)
        except (ValueError, TypeError, AttributeError):  # a value marshal does not take
            try:
                frame, added = self._frame([_plain(r) for r in records], first_seq)
            except (ValueError, TypeError, AttributeError) as exc:
                self.errors += 1
                log.warning("prediction records not journaled (do not encode): %s", exc)
                return
        start = segment.size
        end = start + len(frame)
        if segment.map is not None and end <= segment.capacity:
            segment.map[start:end] = frame
        else:  # a later frame overwrites whatever a failed pwrite left past `size`
            try:
                done = os.pwrite(segment.fd, frame, start)
                while done < len(frame):
                    done += os.pwrite(segment.fd, frame[done:], start + done)
            except OSError as exc:
                self.errors += 1
                log.warning("prediction journal write failed: %s", exc)
                return
        segment.size = end
        names, contexts = added
        if names:
            segment.names.update(names)
        if contexts:
            segment.contexts.update(contexts)

    def _frame(
        self, records: Sequence[PredictionRecord], first_seq: int
    ) -> tuple[bytes, tuple[dict[int, tuple[int, object]], dict[tuple[Any, ...], int]]]:
        """The frame, and the feature-name tables and contexts it adds to the segment.

        marshal writes any buffer (a numpy array or scalar) as bytes, so every value must
        be of a plain type (`_FIELDS`); a TypeError sends the caller to `_plain`.
        """
        tables = _Additions(self._segment)
        entries = []
        last_ts: datetime | None = None
        ts_us = 0
        for r in records:
            index = tables.name_index(r.feature_names)
            context = tables.context(
                (r.model, r.version, r.threshold, r.endpoint, r.variant, index)
            )
            features: Any = r.features
            if type(features) is list:
                # plain numbers: packed; None among them, or other types: as they are
                with contextlib.suppress(TypeError):
                    features = array("d", features).tobytes()
            if type(features) is not bytes:
                values = features.values() if type(features) is dict else features
                if not _FIELDS.issuperset(map(type, values)):
                    raise TypeError("feature values that are not plain float or None")
            ts = r.ts
            if ts is not last_ts:  # a batch's records share one timestamp object
                ts_us, last_ts = (ts - _EPOCH) // _MICROSECOND, ts
            tx_time = r.tx_time
            entry = (
                r.request_id, ts_us, context, features, r.score, r.decision, r.latency_ms,
                r.degraded, r.transaction_id, r.customer_id, r.terminal_id,
                None if tx_time is None else (tx_time - _EPOCH) // _MICROSECOND,
            )  # fmt: skip
            if not _FIELDS.issuperset(map(type, entry)):
                raise TypeError("values that are not plain str, int, float, bool or None")
            entries.append(entry)
        payload = marshal.dumps(
            (FORMAT, first_seq, tables.new_names, tables.new_contexts, entries), _MARSHAL_VERSION
        )
        return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload, tables.added()

    def _block_frame(
        self, block: RecordBlock, first_seq: int
    ) -> tuple[bytes, tuple[dict[int, tuple[int, object]], dict[tuple[Any, ...], int]]]:
        """A block's frame (see the module docstring), and the names and context it adds.

        A value of a type marshal would take as something else (a numpy scalar, a naive
        time) raises TypeError: the caller falls back to the block's plain records.
        """
        tables = _Additions(self._segment)
        index = tables.name_index(block.feature_names)
        key = (block.model, block.version, block.threshold, block.endpoint, block.variant, index)
        context = tables.context(key)
        ids, decisions = block.request_ids, block.decisions
        if not (_STR.issuperset(map(type, ids)) and _STR.issuperset(map(type, decisions))):
            raise TypeError("request ids and decisions must be str")
        if not (
            _FLOAT.issuperset(map(type, block.latency_ms))
            and _BOOL.issuperset(map(type, block.degraded))
        ):
            raise TypeError("latencies must be float, degraded flags bool")
        tx, micros = block.transactions, block.tx_micros()
        columns = None
        if tx is not None and micros is not None:
            columns = (tx[0], tx[1], tx[2], micros)
            if not all(_INT.issuperset(map(type, c)) for c in columns):
                raise TypeError("transaction ids and times must be int")
        features = block.features
        entry = (
            context, ids, (block.ts - _EPOCH) // _MICROSECOND, features.dtype.char,
            features.tobytes(), block.scores.tobytes(), decisions, block.latency_ms,
            block.degraded, columns,
        )  # fmt: skip
        payload = marshal.dumps(
            (BLOCK_FORMAT, first_seq, tables.new_names, tables.new_contexts, entry),
            _MARSHAL_VERSION,
        )
        return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload, tables.added()

    def seal(self) -> Path | None:
        """Close the current segment and start the next one; the sealed path (None if
        empty: the segment stays current)."""
        return self.finish(self.swap())

    def swap(self) -> _Segment | None:
        """Start the next segment; the old one, still open (None if empty: it stays current).

        Quick, so it may run under the log's lock; `finish` (unmap, cut to size: that can
        take milliseconds) runs after it, outside the lock, off the scoring path.
        """
        if self._segment.size == 0:
            return None
        sealed = self._segment
        try:
            self._segment = self._spare if self._spare is not None else self._open_segment()
        except OSError as exc:  # keep appending to the old one: it is deleted with the batch
            self.errors += 1
            log.warning("prediction journal cannot start a segment: %s", exc)
            return None
        self._spare = None
        return sealed

    def finish(self, sealed: _Segment | None) -> Path | None:
        """Close a swapped-out segment; its path."""
        if sealed is None:
            return None
        try:
            sealed.close()
        except OSError as exc:  # its content is written; only the cut failed
            log.warning("prediction journal %s not cut to size: %s", sealed.path, exc)
        return sealed.path

    def discard(self, segments: Sequence[Path]) -> None:
        """Delete segments whose records are stored."""
        for path in segments:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def close(self, *, clean: bool) -> None:
        """Release the journal; `clean` (everything stored) deletes its files too, else the
        next writer replays them."""
        for segment in (self._segment, self._spare):
            if segment is None:
                continue
            with contextlib.suppress(OSError):
                segment.close()
            if clean or segment is self._spare:
                self.discard([segment.path])
        self._spare = None
        if clean:
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()
        os.close(self._lock_fd)


@dataclass
class DeadJournal:
    """The journal of a writer that died, locked by the writer that replays it."""

    id: str
    lock_path: Path
    segments: list[Path]
    lock_fd: int

    def batches(self) -> Iterator[list[tuple[int, PredictionRecord]]]:
        """Each segment's (sequence number, record) pairs, oldest segment first."""
        for segment in self.segments:
            yield list(read_segment(segment))

    def remove(self) -> None:
        """Delete the replayed segments, then the lock file (the order a crash needs)."""
        for segment in self.segments:
            with contextlib.suppress(FileNotFoundError):
                segment.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.lock_path.unlink()
        self.release()

    def release(self) -> None:
        """Unlock without deleting (a failed replay: the next writer tries again)."""
        if self.lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.lock_fd)
            self.lock_fd = -1


def claim_dead(folder: Path) -> list[DeadJournal]:
    """Lock and return the journals in `folder` whose writers are gone."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    dead: list[DeadJournal] = []
    for lock_path in sorted(folder.glob("*.lock")):
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:  # replayed meanwhile by another writer
            continue
        if not _lock(fd, lock_path):  # alive
            os.close(fd)
            continue
        if not lock_path.exists():  # replayed and removed between our open and our lock
            os.close(fd)
            continue
        journal_id = lock_path.name.removesuffix(".lock")
        segments = sorted(folder.glob(f"{journal_id}.*.seg"))
        dead.append(DeadJournal(journal_id, lock_path, segments, fd))
    return dead


#: How long `claim_dead` waits for the writer process of a dead owner to exit.
DYING_WAIT_S = 30.0


def _lock(fd: int, lock_path: Path) -> bool:
    """Lock a journal's lock file; False if its writer lives.

    A Parquet log's writer process holds the lock with its owner (`writer.py`); killed,
    the owner leaves the lock held for as long as the child takes to see EOF and finish
    its write (milliseconds). A lock held while the pid written in it is gone (or a
    zombie) is therefore waited for, DYING_WAIT_S at most, rather than taken for alive.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    if not _owner_gone(fd):
        return False
    deadline = time.monotonic() + DYING_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.01)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            continue
    log.warning("prediction journal %s: its owner is gone but its lock still held", lock_path)
    return False


def _owner_gone(fd: int) -> bool:
    """Whether the pid written in a lock file is no live process (unknown: False)."""
    if not os.path.isdir("/proc/self"):
        return False  # no procfs (not Linux): a held lock is a live writer, as before
    try:
        pid = int(os.pread(fd, 32, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return False  # a journal of a version that wrote no pid: as before
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except FileNotFoundError:
        return True
    except (OSError, IndexError):
        return False


def read_segment(path: Path) -> Iterator[tuple[int, PredictionRecord]]:
    """The (sequence number, record) pairs of one segment, up to its first bad frame."""
    for first_seq, records in read_segment_parts(path):
        for i, record in enumerate(records):
            yield first_seq + i, record


def read_segment_parts(path: Path) -> Iterator[tuple[int, Sequence[PredictionRecord]]]:
    """Each frame of one segment as (first sequence number, its records), up to the first
    bad frame: a block's frame as a `RecordBlock` (columns, no object per row: what the
    Parquet log's writer process encodes with `parts_table`), a records frame as a list."""
    data = path.read_bytes()
    names: dict[int, tuple[str, ...]] = {}
    contexts: dict[int, tuple[Any, ...]] = {}
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        if length == 0:  # the reserved, never written rest of a segment
            break
        start = offset + _HEADER.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            log.warning("prediction journal %s: a torn frame at byte %d ends it", path, offset)
            return
        records: Sequence[PredictionRecord]
        try:
            frame = marshal.loads(payload)
            if frame[0] not in (FORMAT, BLOCK_FORMAT):
                raise ValueError(
                    f"frame format {frame[0]!r}, this version reads {FORMAT} and {BLOCK_FORMAT}"
                )
            kind, first_seq, new_names, new_contexts, entries = frame
            names.update((int(i), tuple(n)) for i, n in new_names)
            contexts.update((int(i), tuple(c)) for i, c in new_contexts)
            if kind == BLOCK_FORMAT:
                records = _block(entries, names, contexts)
            else:
                records = [_record(e, names, contexts) for e in entries]
        except (ValueError, TypeError, EOFError, KeyError, IndexError) as exc:
            log.warning("prediction journal %s: bad frame at byte %d: %s", path, offset, exc)
            return
        yield first_seq, records
        offset = start + length
    if data.count(0, offset) != len(data) - offset:
        log.warning("prediction journal %s: a torn header at byte %d ends it", path, offset)


def _record(
    entry: Any, names: dict[int, tuple[str, ...]], contexts: dict[int, tuple[Any, ...]]
) -> PredictionRecord:
    (
        request_id, ts, context, features, score, decision, latency_ms, degraded,
        transaction_id, customer_id, terminal_id, tx_time,
    ) = entry  # fmt: skip
    model, version, threshold, endpoint, variant, index = contexts[context]
    timestamp = _from_micros(ts)
    if timestamp is None:
        raise ValueError("a journal entry without a timestamp")
    if type(features) is bytes:
        features = array("d", features).tolist()
    return PredictionRecord(
        request_id, timestamp, model, version, features, score, decision, threshold,
        latency_ms, degraded, None if index == NO_NAMES else names[index], endpoint, variant,
        transaction_id, customer_id, terminal_id, _from_micros(tx_time),
    )  # fmt: skip


class _Additions:
    """The feature-name tables and contexts one frame adds to its segment's: each frame
    carries only those its segment has not seen, numbered after the segment's."""

    def __init__(self, segment: _Segment) -> None:
        self.known, self.known_contexts = segment.names, segment.contexts
        self.names: dict[int, tuple[int, object]] = {}
        self.contexts: dict[tuple[Any, ...], int] = {}
        self.new_names: list[tuple[int, tuple[str, ...]]] = []
        self.new_contexts: list[tuple[int, tuple[Any, ...]]] = []

    def name_index(self, names: Sequence[str] | None) -> int:
        """The number of a feature-name list (NO_NAMES for none), added when new."""
        if names is None:
            return NO_NAMES
        found = self.known.get(id(names)) or self.names.get(id(names))
        if found is not None:
            return found[0]
        index = len(self.known) + len(self.names)
        self.names[id(names)] = (index, names)  # holds the object: its id stays unique
        self.new_names.append((index, tuple(str(n) for n in names)))
        return index

    def context(self, key: tuple[Any, ...]) -> int:
        """The number of a (model, version, threshold, endpoint, variant, names) context,
        added when new; TypeError for a value marshal would not keep as it is."""
        context = self.known_contexts.get(key)
        if context is None:
            context = self.contexts.get(key)
        if context is None:
            if not _FIELDS.issuperset(map(type, key)):
                raise TypeError("values that are not plain str, int, float or None")
            context = len(self.known_contexts) + len(self.contexts)
            self.contexts[key] = context
            self.new_contexts.append((context, key))
        return context

    def added(self) -> tuple[dict[int, tuple[int, object]], dict[tuple[Any, ...], int]]:
        """(names, contexts) to merge into the segment once the frame is written."""
        return self.names, self.contexts


def _block(
    entry: Any, names: dict[int, tuple[str, ...]], contexts: dict[int, tuple[Any, ...]]
) -> RecordBlock:
    """The block a block's frame holds (its `records()` are those the writer appended)."""
    context, ids, ts, dtype, features, scores, decisions, latency_ms, degraded, tx = entry
    model, version, threshold, endpoint, variant, index = contexts[context]
    feature_names = names[index]
    timestamp = _from_micros(ts)
    if timestamp is None or dtype not in _DTYPES:
        raise ValueError("a journal block without a timestamp, or of an unknown dtype")
    n = len(ids)
    matrix = np.frombuffer(features, dtype=_DTYPES[dtype]).reshape(n, len(feature_names))
    columns: TxColumns | None = None
    if tx is not None:
        times = [_from_micros(when) for when in tx[3]]
        columns = (tx[0], tx[1], tx[2], times)  # type: ignore[assignment]  # from a block: set
    return RecordBlock(
        list(ids), timestamp, model, version, matrix, np.frombuffer(scores, dtype=np.float64),
        list(decisions), threshold, list(latency_ms), list(degraded), feature_names, endpoint,
        variant, columns,
    )  # fmt: skip
