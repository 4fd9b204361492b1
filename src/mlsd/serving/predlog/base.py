"""The prediction log interface, and the buffering every backend shares.

`append` only puts records in memory; a background thread writes them every
`flush_seconds` or as soon as `flush_records` are waiting; `close` writes the rest,
so a clean stop loses nothing. A failed write keeps its records for the next try.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

import pandas as pd

from mlsd.errors import MlsdError, UnavailableError, ValidationError
from mlsd.serving.predlog.record import PredictionRecord, to_row

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogStats:
    """Records waiting in memory, written, dropped (buffer full), and failed writes."""

    buffered: int
    written: int
    dropped: int
    write_errors: int


@runtime_checkable
class PredictionLog(Protocol):
    """An append-only log of predictions."""

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Queue records for writing; never blocks on storage."""
        ...

    def flush(self) -> int:
        """Write what is queued now; returns the number of records written."""
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


class BufferedLog(ABC):
    """Buffer + background flusher; a backend supplies `_write`, `_read` and `_release`."""

    def __init__(
        self,
        flush_seconds: float = 1.0,
        flush_records: int = 5_000,
        max_buffered: int = 1_000_000,
    ) -> None:
        if flush_seconds <= 0 or flush_records < 1 or max_buffered < flush_records:
            raise ValueError("need flush_seconds > 0 and 1 <= flush_records <= max_buffered")
        self.flush_seconds = flush_seconds
        self.flush_records = flush_records
        self.max_buffered = max_buffered
        self._buffer: list[PredictionRecord] = []
        self._lock = threading.Lock()  # guards the buffer and counters
        self._write_lock = threading.Lock()  # one write at a time, in order
        self._wake = threading.Event()
        self._closed = False
        self._written = 0
        self._dropped = 0
        self._errors = 0
        self._thread = threading.Thread(
            target=self._run, name=f"{type(self).__name__}-flusher", daemon=True
        )
        self._thread.start()

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Queue records; beyond `max_buffered` waiting, the newest are dropped and counted."""
        if self._closed:
            raise UnavailableError("the prediction log is closed")
        for r in records:
            if r.ts.tzinfo is None:
                raise ValidationError("prediction timestamps must be timezone-aware", field="ts")
        with self._lock:
            room = self.max_buffered - len(self._buffer)
            if room < len(records):
                self._dropped += len(records) - max(room, 0)
                records = records[: max(room, 0)]
            self._buffer.extend(records)
            full = len(self._buffer) >= self.flush_records
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Write everything queued; on failure the records stay queued and the error is raised.

        A batch that does not encode is retried without its malformed records (dropped,
        counted, logged), so one bad record never blocks the log.
        """
        with self._write_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return 0
            try:
                try:
                    self._write(batch)
                except (ValidationError, ValueError, TypeError):
                    batch = self._encodable(batch)
                    try:
                        if batch:
                            self._write(batch)
                    except (ValidationError, ValueError, TypeError) as exc:
                        log.error("prediction batch of %d dropped: %s", len(batch), exc)
                        with self._lock:
                            self._dropped += len(batch)
                        batch = []
            except MlsdError:
                with self._lock:
                    self._errors += 1
                    self._buffer[:0] = batch
                    excess = len(self._buffer) - self.max_buffered
                    if excess > 0:
                        self._dropped += excess
                        del self._buffer[self.max_buffered :]
                raise
            with self._lock:
                self._written += len(batch)
            return len(batch)

    def _encodable(self, batch: list[PredictionRecord]) -> list[PredictionRecord]:
        """The records that encode; a malformed one is dropped, counted and logged."""
        good: list[PredictionRecord] = []
        for r in batch:
            try:
                self._encode_one(r)
            except (ValidationError, ValueError, TypeError) as exc:
                log.warning("prediction record %s dropped: %s", r.request_id, exc)
                with self._lock:
                    self._dropped += 1
                continue
            good.append(r)
        return good

    def _encode_one(self, record: PredictionRecord) -> object:
        """Encode one record as the backend would (to find the malformed ones)."""
        return to_row(record)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except MlsdError as exc:
                log.warning("prediction log write failed, will retry: %s", exc)
            except Exception:  # the flusher must outlive any bug: log it loudly, keep going
                log.exception("prediction log flush crashed, will retry")

    def close(self) -> None:
        """Stop the flusher, write everything left, release the backend."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
        try:
            self.flush()
        finally:
            self._release()

    def read(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Flush, then read start <= ts < end."""
        if not self._closed:
            self.flush()
        with self._write_lock:
            return self._read(start, end)

    def stats(self) -> LogStats:
        """A snapshot of the counters."""
        with self._lock:
            return LogStats(len(self._buffer), self._written, self._dropped, self._errors)

    @abstractmethod
    def _write(self, records: list[PredictionRecord]) -> None:
        """Encode and store records: ValidationError, ValueError or TypeError for a record
        that does not encode, UnavailableError when storage fails."""

    @abstractmethod
    def _read(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        """Stored records in range (finished with `record.finish_frame`)."""

    @abstractmethod
    def _release(self) -> None:
        """Close files or connections."""
