"""The prediction log interface, and the buffering and journal every backend shares.

`append` puts records in memory and, when the log has a journal, writes them to it
with one `os.write` before returning (`journal.py`): a `kill -9` then loses nothing
that was appended, the next writer on the log replays it. A background thread writes
the buffer to the store every `flush_seconds` or as soon as `flush_records` are
waiting; `close` writes the rest, so a clean stop loses nothing either. A failed write
keeps its records for the next try.

Every accepted record gets a sequence number: `append` returns the last one, and
`durable_seq` is the highest number up to which every record is stored (or was dropped
as malformed), so a caller that must not lose records (a stream processor committing
its offsets) waits for `wait_durable(seq)` before it commits.

Between writes the thread encodes what has arrived, every tenth of `flush_seconds`
(`ENCODE_TICKS`): the encoding holds the GIL, and on a server whose event loop
shares one core with it, one big encoding per second stalled requests for ~10 ms
(p99 at half load 7-17 ms with the log, 3 ms without); ten small ones stall it
for ~1 ms each.

Small stalls are still stalls: the Parquet log moves the encoding and the write out of
the process (`_offload`, `writer.py`). Its flusher then only seals the journal segment
of each batch and hands its path to a child process, which decodes, encodes and stores
it; nothing is encoded ahead, and the records in memory are let go at the seal (the
segment is the data).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Generic, Protocol, TypeVar, runtime_checkable

import pandas as pd

from mlsd.errors import MlsdError, UnavailableError, ValidationError
from mlsd.predlog.block import RecordBlock, flat_records
from mlsd.predlog.journal import DeadJournal, Journal, JournalMark, claim_dead
from mlsd.predlog.record import PredictionRecord
from mlsd.predlog.writer import Batch, WriterProcess
from mlsd.priority import in_background

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogStats:
    """Records waiting in memory, written, dropped (buffer full or malformed), failed
    writes, records replayed from dead writers' journals, and failed journal writes."""

    buffered: int
    written: int
    dropped: int
    write_errors: int
    replayed: int = 0
    journal_errors: int = 0


@runtime_checkable
class PredictionLog(Protocol):
    """An append-only log of predictions."""

    def append(self, records: Sequence[PredictionRecord]) -> int:
        """Queue records (journaled first, where the log has a journal); never blocks on
        storage. Returns the sequence number of the last record accepted."""
        ...

    def flush(self) -> int:
        """Write what is queued now; returns the number of records written."""
        ...

    @property
    def durable_seq(self) -> int:
        """Every record numbered up to this one is stored (or was dropped, and counted)."""
        ...

    def wait_durable(self, seq: int, timeout: float) -> bool:
        """Wait until `durable_seq >= seq` (asking for a flush now); False on timeout."""
        ...

    def close(self) -> None:
        """Write everything and release resources; later appends are refused."""
        ...

    def read(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Records with start <= ts < end (after a flush), oldest first."""
        ...

    def stats(self) -> LogStats:
        """Counters."""
        ...

    def logged_ids(self, prefix: str, since: datetime | None = None) -> set[tuple[str, str]]:
        """`(request_id, variant)` of the stored records (after a flush) whose request id
        starts with `prefix`, logged at or after `since`: what a job run again must not log
        twice."""
        ...


#: A backend's encoded chunk (an Arrow table, a list of COPY rows).
Chunk = TypeVar("Chunk")


@dataclass
class _Pending(Generic[Chunk]):
    """A batch taken from the buffer, encoded, not yet stored."""

    rows: int
    chunk: Chunk
    last_seq: int
    segment: Path | None  # its journal segment, deleted once it is stored


def encode_dropping_bad(
    parts: list[Sequence[PredictionRecord]],
    encode_parts: Callable[[list[Sequence[PredictionRecord]]], Chunk],
    encode: Callable[[list[PredictionRecord]], Chunk],
    dropped: Callable[[int], None],
) -> tuple[int, Chunk] | None:
    """(records kept, chunk) of `parts`; malformed records are dropped, logged and told
    to `dropped` (None: nothing left). The batch is encoded whole first, and record by
    record only when that fails, so one bad record never blocks the log."""
    try:
        return sum(map(len, parts)), encode_parts(parts)
    except (ValidationError, ValueError, TypeError):
        pass
    good: list[PredictionRecord] = []
    for r in flat_records(parts):
        try:
            encode([r])
        except (ValidationError, ValueError, TypeError) as exc:
            log.warning("prediction record %s dropped: %s", r.request_id, exc)
            dropped(1)
            continue
        good.append(r)
    if not good:
        return None
    try:
        return len(good), encode(good)
    except (ValidationError, ValueError, TypeError) as exc:
        log.error("prediction batch of %d dropped: %s", len(good), exc)
        dropped(len(good))
        return None


def _prepare_segment(journal: Journal) -> None:
    """Make the journal's next segment outside the lock (a failure is retried by the
    swap, under the lock)."""
    try:
        journal.prepare()
    except OSError as exc:
        log.warning("prediction journal cannot prepare a segment: %s", exc)


class BufferedLog(ABC, Generic[Chunk]):
    """Buffer + journal + background flusher; a backend supplies `_encode`, `_store`,
    `_unstored`, `_read` and `_release`, and must be ready for `_store` before calling
    `super().__init__` (a dead writer's journal is replayed there).

    A backend that sets `_offload` (a `WriterProcess`, with a journal) before that has its
    batches stored by that child process instead: the flusher seals the journal segment
    holding the batch and hands its path over (`writer.py`); nothing is encoded here but
    the rare batch the journal failed on (`_wire`).
    """

    #: Encodings between two writes (the flusher wakes every flush_seconds / ENCODE_TICKS).
    ENCODE_TICKS = 10
    #: The process that stores the batches (None: this process, on the flusher thread).
    _offload: WriterProcess | None = None

    def __init__(
        self,
        flush_seconds: float = 1.0,
        flush_records: int = 5_000,
        max_buffered: int = 1_000_000,
        journal: Path | None = None,
    ) -> None:
        if flush_seconds <= 0 or flush_records < 1 or max_buffered < flush_records:
            raise ValueError("need flush_seconds > 0 and 1 <= flush_records <= max_buffered")
        self.flush_seconds = flush_seconds
        self.flush_records = flush_records
        self.max_buffered = max_buffered
        # What `append` took since the last encoding, as given: record lists and blocks
        # (`block.py`: a scored batch's rows as columns, never one object per row).
        self._buffer: list[Sequence[PredictionRecord]] = []
        self._buffered = 0  # rows in `_buffer`
        # Batches taken from the buffer and encoded ahead of the write, oldest first; kept
        # (and counted as buffered) until a write succeeds.
        self._encoded: list[_Pending[Chunk]] = []
        self._encoded_rows = 0
        # With `_offload`: batches sent (or to send) to the writer process, not yet stored,
        # each with the segment to delete once it is (rows counted in `_encoded_rows`).
        self._outbox: list[tuple[Batch, Path | None]] = []
        self._journal_errors_seen = 0  # the journal's error count at the last seal
        self._lock = threading.Lock()  # guards the buffer, journal, sequence numbers, counters
        self._durable_changed = threading.Condition(self._lock)
        self._write_lock = threading.Lock()  # one encoding or write at a time, in order
        self._wake = threading.Event()
        self._closed = False
        self._seq = 0  # the last sequence number given
        self._taken_seq = 0  # the last one taken from the buffer into a batch
        self._durable_seq = 0
        self._written = 0
        self._dropped = 0
        self._errors = 0
        self._replayed = 0
        self._journal: Journal | None = None
        if journal is not None:
            claimed = claim_dead(journal)
            try:
                for dead in claimed:
                    self._replay(dead)
            except BaseException:
                for dead in claimed:  # unlock the rest: the next writer replays them
                    dead.release()
                raise
            try:
                self._journal = Journal(journal)
            except OSError as exc:
                raise UnavailableError(
                    f"cannot open the prediction log's journal in {journal}: {exc}"
                ) from exc
        self._thread = threading.Thread(
            target=in_background(self._run), name=f"{type(self).__name__}-flusher", daemon=True
        )
        self._thread.start()

    @property
    def journal_id(self) -> str | None:
        """This writer's journal id (None without a journal)."""
        return None if self._journal is None else self._journal.id

    def append(self, records: Sequence[PredictionRecord]) -> int:
        """Journal and queue records; beyond `max_buffered` waiting, the newest are dropped
        and counted. Returns the sequence number of the last record accepted."""
        if self._closed:
            raise UnavailableError("the prediction log is closed")
        if isinstance(records, RecordBlock):
            if records.ts.tzinfo is None:
                raise ValidationError("prediction timestamps must be timezone-aware", field="ts")
        else:
            for r in records:
                if r.ts.tzinfo is None:
                    raise ValidationError(
                        "prediction timestamps must be timezone-aware", field="ts"
                    )
            records = list(records)  # the caller's list may change after the call
        with self._lock:
            if self._closed:  # closed meanwhile: its journal may be gone
                raise UnavailableError("the prediction log is closed")
            room = self.max_buffered - self._buffered - self._encoded_rows
            if room < len(records):
                self._dropped += len(records) - max(room, 0)
                records = records[: max(room, 0)]
            if records:
                if self._journal is not None:
                    self._journal.write(records, self._seq + 1)
                self._seq += len(records)
                self._buffer.append(records)
                self._buffered += len(records)
            seq = self._seq
            full = self._buffered + self._encoded_rows >= self.flush_records
        if full:
            self._wake.set()
        return seq

    @property
    def durable_seq(self) -> int:
        """Every record numbered up to this one is stored (or was dropped, and counted)."""
        with self._lock:
            return self._durable_seq

    def wait_durable(self, seq: int, timeout: float) -> bool:
        """Wait until `durable_seq >= seq`, waking the flusher now; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._durable_seq >= seq:
                return True
        self._wake.set()
        with self._durable_changed:
            while self._durable_seq < seq:
                left = deadline - time.monotonic()
                if left <= 0 or (self._closed and not self._thread.is_alive()):
                    return self._durable_seq >= seq
                self._durable_changed.wait(min(left, self.flush_seconds))
            return True

    def flush(self) -> int:
        """Write everything queued; on failure the records stay queued and the error is raised.

        A batch that does not encode is retried without its malformed records (dropped,
        counted, logged), so one bad record never blocks the log.
        """
        with self._write_lock:
            if self._offload is not None:
                return self._flush_offloaded(self._offload)
            self._encode_buffer()
            parts = self._encoded
            with self._lock:
                taken = self._taken_seq
            if parts:
                mark = self._mark(parts[-1].last_seq)
                try:
                    self._store([p.chunk for p in parts], mark)
                except MlsdError:
                    with self._lock:
                        self._errors += 1
                    raise
            rows = sum(p.rows for p in parts)
            with self._lock:
                self._encoded = []
                self._encoded_rows = 0
                self._written += rows
                self._durable_seq = max(self._durable_seq, taken)
                self._durable_changed.notify_all()
            if self._journal is not None:
                self._journal.discard([p.segment for p in parts if p.segment is not None])
            return rows

    def _flush_offloaded(self, writer: WriterProcess) -> int:
        """`flush` through the writer process (call with the write lock held)."""
        journal = self._journal
        if journal is None:
            raise ValueError("a prediction log stored by a writer process needs a journal")
        self._take_batch(journal)
        sent = self._outbox
        with self._lock:
            taken = self._taken_seq
        kept = dropped = 0
        if sent:
            try:
                kept, dropped = writer.store(journal.id, journal.lock_fd, [b for b, _ in sent])
            except MlsdError:
                with self._lock:
                    self._errors += 1
                raise
        with self._lock:
            self._outbox = []
            self._encoded_rows = 0
            self._written += kept
            self._dropped += dropped
            self._durable_seq = max(self._durable_seq, taken)
            self._durable_changed.notify_all()
        journal.discard([segment for _, segment in sent if segment is not None])
        return kept

    def _take_batch(self, journal: Journal) -> None:
        """Seal the buffer's segment into the outbox. A segment the journal wrote whole is
        sent as its path (the records in memory are let go); one it failed on (a full disk,
        a record marshal refused) is encoded here and sent as bytes (`_wire`)."""
        _prepare_segment(journal)
        with self._lock:
            batch, self._buffer = self._buffer, []
            self._buffered = 0
            if not batch:
                return
            swapped = journal.swap()
            whole = swapped is not None and journal.errors == self._journal_errors_seen
            self._journal_errors_seen = journal.errors
            after, last = self._taken_seq, self._seq
            self._taken_seq = last
            self._encoded_rows += last - after
        segment = journal.finish(swapped)  # may also hold records before `after`: skipped
        if whole:
            item = Batch(after, last, segment)
        else:
            chunk = self._encode_dropping_bad(batch)
            item = Batch(after, last, None, None if chunk is None else self._wire(chunk[1]))
        self._outbox.append((item, segment))

    def _mark(self, seq: int) -> JournalMark | None:
        return None if self._journal is None else JournalMark(self._journal.id, seq)

    def _encode_ahead(self) -> None:
        """Encode what is buffered now, to be written with the next flush."""
        with self._write_lock:
            self._encode_buffer(seal=False)

    def _encode_buffer(self, *, seal: bool = True) -> None:
        """Move the buffer into an encoded batch (call with the write lock held).

        `seal` (at a write) closes the journal segment holding everything taken since the
        last write, deleted once stored; an encoding ahead of the write leaves its records
        in the open segment (a new segment per tick cost the hot path page faults).
        """
        if self._journal is not None and seal:
            _prepare_segment(self._journal)
        with self._lock:
            batch, self._buffer = self._buffer, []
            self._buffered = 0
            if not batch:
                return
            swapped = self._journal.swap() if self._journal is not None and seal else None
            last_seq = self._taken_seq = self._seq
        # unmapped and cut outside the lock: appends (the scoring path) never wait on it
        segment = self._journal.finish(swapped) if self._journal is not None else None
        chunk = self._encode_dropping_bad(batch)
        if chunk is None:  # all malformed: nothing to store, but its segment must go
            if segment is not None and self._journal is not None:
                self._journal.discard([segment])
            return
        kept, encoded = chunk
        with self._lock:
            self._encoded.append(_Pending(kept, encoded, last_seq, segment))
            self._encoded_rows += kept

    def _encode_dropping_bad(
        self, parts: list[Sequence[PredictionRecord]]
    ) -> tuple[int, Chunk] | None:
        """(records kept, chunk); malformed records are dropped, counted and logged."""
        return encode_dropping_bad(parts, self._encode_parts, self._encode, self._count_dropped)

    def _count_dropped(self, n: int) -> None:
        with self._lock:
            self._dropped += n

    def _replay(self, dead: DeadJournal) -> None:
        """Store what a dead writer journaled and had not stored, then delete its journal.

        Each segment is stored with the mark (dead id, its last number), atomically with
        its records, so a replay killed midway is finished by the next one, never doubled.
        A failed store leaves the journal for the next writer and raises.
        """
        replayed = 0
        try:
            for entries in dead.batches():
                if not entries:
                    continue
                fresh = self._unstored(dead.id, entries)
                chunk = self._encode_dropping_bad([fresh]) if fresh else None
                if chunk is not None:
                    self._store([chunk[1]], JournalMark(dead.id, entries[-1][0]))
                    replayed += chunk[0]
        except BaseException:
            dead.release()
            raise
        finally:
            self._replayed += replayed
        dead.remove()
        self._forget(dead.id)
        log.info("prediction log: %d records replayed from journal %s", replayed, dead.id)

    def _run(self) -> None:
        tick = self.flush_seconds / self.ENCODE_TICKS
        last = time.monotonic()
        while not self._closed:
            woken = self._wake.wait(tick)
            if woken:  # cleared only when seen: a wake set after a timed-out wait is kept
                self._wake.clear()  # (a blind clear lost it: a durable wait sat out 1 s)
            if self._closed:
                return  # close() writes the rest
            try:
                if woken or time.monotonic() - last >= self.flush_seconds:
                    last = time.monotonic()
                    self.flush()
                elif self._offload is None:  # a writer process encodes: nothing ahead here
                    self._encode_ahead()
            except MlsdError as exc:
                log.warning("prediction log write failed, will retry: %s", exc)
            except Exception:  # the flusher must outlive any bug: log it loudly, keep going
                log.exception("prediction log flush crashed, will retry")

    def close(self) -> None:
        """Stop the flusher, write everything left, release the backend and the journal
        (deleted when everything is stored, kept for the next writer's replay if not).

        A store that is down at the stop (PostgreSQL unreachable, a full disk) is not an
        error of the stop: the records stay in the journal, the next writer on this log
        replays them, and a warning says how many. Without a journal they are lost, and the
        warning says that too.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True  # under the lock: no append is journaling now, none will
        self._wake.set()
        self._thread.join()
        stored = False
        try:
            self.flush()
            stored = True
        except MlsdError as exc:
            with self._lock:
                left = self._buffered + self._encoded_rows
            where = (
                "kept in the journal for the next start to replay"
                if self._journal is not None
                else "lost (no journal)"
            )
            log.warning("prediction log closed with its store down (%s): %d records %s",
                        exc.message, left, where)  # fmt: skip
        finally:
            with self._durable_changed:
                self._durable_changed.notify_all()
            if self._offload is not None:  # stopped before the journal is unlocked
                self._offload.close()
            if self._journal is not None:
                self._journal.close(clean=stored)
                if stored:
                    self._forget(self._journal.id)
            self._release()

    def read(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Flush, then read start <= ts < end."""
        if not self._closed:
            self.flush()
        with self._write_lock:
            return self._read(start, end)

    def logged_ids(self, prefix: str, since: datetime | None = None) -> set[tuple[str, str]]:
        """`(request_id, variant)` stored under `prefix` since `since` (after a flush).

        Flushed first, so what this writer (and, at its open, the replay of a dead writer's
        journal) took is all counted: a job re-run after a `kill -9` logs only the rows its
        killed run had not.
        """
        frame = self.read(since, None)
        if frame.empty:
            return set()
        mine = frame[frame["request_id"].str.startswith(prefix)]
        return set(zip(mine["request_id"], mine["variant"], strict=True))

    def stats(self) -> LogStats:
        """A snapshot of the counters (`buffered` includes batches encoded but not written)."""
        with self._lock:
            buffered = self._buffered + self._encoded_rows
            journal_errors = 0 if self._journal is None else self._journal.errors
            return LogStats(
                buffered, self._written, self._dropped, self._errors, self._replayed,
                journal_errors,
            )  # fmt: skip

    @abstractmethod
    def _encode(self, records: list[PredictionRecord]) -> Chunk:
        """Records in the backend's form (an Arrow table, COPY rows): ValidationError,
        ValueError or TypeError when a record does not encode."""

    def _encode_parts(self, parts: list[Sequence[PredictionRecord]]) -> Chunk:
        """What `append` took (record lists and blocks, in order) in the backend's form;
        by default `_encode` of their records (a backend may encode blocks as columns)."""
        return self._encode(flat_records(parts))

    @abstractmethod
    def _store(self, chunks: list[Chunk], mark: JournalMark | None) -> None:
        """Store encoded chunks, oldest first, all or nothing, with `mark` committed
        atomically with them; UnavailableError when the storage fails."""

    @abstractmethod
    def _unstored(
        self, journal_id: str, entries: list[tuple[int, PredictionRecord]]
    ) -> list[PredictionRecord]:
        """The records of `entries` (journal sequence number, record) not yet stored, by
        the marks stored with `journal_id`'s batches."""

    def _wire(self, chunk: Chunk) -> bytes:
        """A chunk as bytes for the writer process (a backend that sets `_offload`)."""
        raise NotImplementedError(f"{type(self).__name__} has no writer process")

    def _forget(self, journal_id: str) -> None:
        """Drop the marks of a journal that is gone (a backend may keep them instead)."""

    @abstractmethod
    def _read(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        """Stored records in range (finished with `record.finish_frame`)."""

    @abstractmethod
    def _release(self) -> None:
        """Close files or connections."""
