"""The Parquet log's writer process: `python -m mlsd.predlog.writer_child ROOT LOCK_FD`.

Started by `writer.WriterProcess` (the serving side, which explains why it exists). It
lowers itself to nice `BACKGROUND_NICE` (and off a real-time policy) before anything
else, then answers one message at a time on stdin/stdout: a list of batches (a sealed
journal segment's path, or Arrow IPC bytes) to decode, encode (blocks as columns,
`parts_table`; malformed records dropped and counted) and store as `parquet.store_tables`
does, with the mark (journal id, last batch's last number) in the file names. With
`check` (a retry after a death or a failed write) a day whose stored mark already covers
a batch is not written again. EOF on stdin (the serving process closed it, or died) ends
the process (SIGINT and SIGTERM are ignored: they reach the server's whole process group,
and the server still needs the child for its last flush); the lock descriptor it was given
is held until then and never touched.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from mlsd.priority import BACKGROUND_NICE, lower_thread

log = logging.getLogger("mlsd.predlog.writer_child")


def main(argv: Sequence[str]) -> int:
    """Serve the messages on stdin until EOF."""
    lower_thread(threading.get_native_id(), BACKGROUND_NICE)  # first: before the imports
    # Ctrl-C and a service manager's SIGTERM reach the whole group: the child ends at the
    # end of its pipe instead, once the server has flushed through it and closed the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if len(argv) != 2:
        print("usage: python -m mlsd.predlog.writer_child ROOT LOCK_FD", file=sys.stderr)
        return 2
    root = Path(argv[0])
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")

    from mlsd.errors import UnavailableError
    from mlsd.predlog.writer import receive, send

    while True:
        message = receive(sys.stdin.buffer)
        if message is None:
            return 0
        try:
            reply: tuple[Any, ...] = ("ok", *serve(root, message))
        except UnavailableError as exc:
            reply = ("error", exc.message)
        except Exception as exc:  # a bug must reach the serving side, as an error it logs
            log.exception("prediction log writer process: a batch crashed")
            reply = ("error", f"the writer process crashed on a batch: {exc!r}")
        try:
            send(replies, reply)
        except BrokenPipeError:  # the serving process is gone: so is the reason to run
            return 0


def serve(root: Path, message: Any) -> tuple[int, int]:
    """Store one message's batches; (records written or found stored, records dropped)."""
    import pyarrow as pa

    from mlsd.errors import UnavailableError
    from mlsd.predlog.base import encode_dropping_bad
    from mlsd.predlog.block import parts_table
    from mlsd.predlog.journal import JournalMark
    from mlsd.predlog.parquet import store_tables
    from mlsd.predlog.record import to_table
    from mlsd.predlog.writer import PROTOCOL

    protocol, journal_id, batches, check = message
    if protocol != PROTOCOL:
        raise UnavailableError(f"writer protocol {protocol!r}, this process speaks {PROTOCOL}")
    dropped = 0

    def drop(n: int) -> None:
        nonlocal dropped
        dropped += n

    tables: list[pa.Table] = []
    kept = 0
    for after, last, segment, arrow in batches:
        table: pa.Table | None = None
        if segment is not None:
            parts = list(_parts(Path(segment), after, last))
            found = sum(map(len, parts))
            if found < last - after:  # a torn or missing segment: said, and counted
                log.error("prediction journal %s: %d of records %d..%d missing",
                          segment, last - after - found, after + 1, last)  # fmt: skip
                drop(last - after - found)
            encoded = encode_dropping_bad(parts, parts_table, to_table, drop) if parts else None
            table = None if encoded is None else encoded[1]
        elif arrow is not None:
            table = pa.ipc.open_stream(arrow).read_all()
        if table is None or table.num_rows == 0:
            continue
        kept += table.num_rows
        if check:
            table = _unstored(root, journal_id, last, table)
        if table.num_rows:
            tables.append(table)
    if tables:
        store_tables(root, tables, JournalMark(journal_id, batches[-1][1]))
    return kept, dropped


def _parts(path: Path, after: int, last: int) -> Iterator[Sequence[Any]]:
    """The frames' records of `path` numbered after..last (a segment may hold earlier
    records, when the journal could not start a new one at a seal)."""
    from mlsd.errors import UnavailableError
    from mlsd.predlog.journal import read_segment_parts

    try:
        for first, records in read_segment_parts(path):
            lo, hi = max(after + 1 - first, 0), min(last + 1 - first, len(records))
            if lo < hi:
                yield records if lo == 0 and hi == len(records) else records[lo:hi]
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UnavailableError(f"cannot read the prediction journal {path}: {exc}") from exc


def _unstored(root: Path, journal_id: str, last: int, table: Any) -> Any:
    """The rows of `table` (a batch numbered up to `last`) on days whose stored mark of
    `journal_id` is below `last`. Batches are stored in order, each store's mark at least
    every batch's it holds, so a day's mark either covers the whole batch or none of it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlsd.errors import UnavailableError
    from mlsd.predlog.compact import journal_marks

    days = pc.strftime(table["ts"], format="%Y-%m-%d")
    try:
        fresh = [
            day
            for day in pc.unique(days).to_pylist()
            if journal_marks(root, date.fromisoformat(day)).get(journal_id, 0) < last
        ]
    except OSError as exc:
        raise UnavailableError(f"cannot read the journal marks under {root}: {exc}") from exc
    return table.filter(pc.is_in(days, pa.array(fresh, pa.string())))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
