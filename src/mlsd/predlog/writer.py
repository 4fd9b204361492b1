"""The Parquet log's writer process: the serving process's side of it.

Encoding a second's records to Arrow and writing them as Parquet costs ~7 ms of CPU per
2,000 rows, and the encoding holds the GIL: on the flusher thread, the event loop waited
for it (up to the 1 ms switch interval each time), and that was the tail of `/v1/score`
above a bare endpoint's (docs/benchmarks.md, "The night of 2026-12-01"). With
`writer="process"` the flusher only seals the journal segment that holds the batch
(`journal.py`: the segment *is* the data) and sends its path here; a child process
(`writer_child.py`, its own interpreter, at nice `BACKGROUND_NICE`) decodes it, encodes
it, writes the day files with the journal mark in their names, fsyncs them and answers.

Exactly once, whatever is killed:

- the child is given the journal's lock descriptor (`pass_fds`): while it may still
  write, the journal stays locked, so no new writer replays it under it;
- the serving process killed: the child reads EOF on its pipe, finishes (or never
  starts) its current write, which is atomic per day file, and exits, unlocking;
- the child killed: the pipe ends, the next `store` starts a new child and sends the
  unanswered batches again with `check=True`, and the child skips every day whose mark
  already covers the batch (a batch stored but not answered is not stored twice).

There is no timeout: a child that hangs holds the flusher, as a hung disk would.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mlsd.errors import UnavailableError

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("<Q")
#: The message layouts this side writes (the first item), and the child reads.
PROTOCOL = 1
#: How long `close` waits for the child to finish and exit before killing it.
CLOSE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Batch:
    """Records numbered after..last of one journal: in `segment`, or (when the journal
    failed on some of them) encoded in the serving process, as Arrow IPC bytes."""

    after: int
    last: int
    segment: Path | None = None
    arrow: bytes | None = None

    def wire(self) -> tuple[int, int, str | None, bytes | None]:
        """As the child reads it (marshal: plain types only)."""
        segment = None if self.segment is None else str(self.segment)
        return self.after, self.last, segment, self.arrow


def send(pipe: IO[bytes], message: Any) -> None:
    """One length-prefixed marshal message."""
    payload = marshal.dumps(message, 2)
    pipe.write(_LENGTH.pack(len(payload)) + payload)
    pipe.flush()


def receive(pipe: IO[bytes]) -> Any:
    """The next message, or None at the end of the pipe (the other side is gone)."""
    head = pipe.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    payload = pipe.read(length)
    if len(payload) < length:
        return None
    return marshal.loads(payload)


class WriterProcess:
    """The child that stores a log's batches under `root`; started at the first `store`."""

    #: What the child runs, after the interpreter (a test may run a harness around it).
    command: tuple[str, ...] = ("-m", "mlsd.predlog.writer_child")

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._check = False  # the last store may have written part: check marks next time
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        """The child's process id (None before the first store, or after `close`)."""
        child = self._child
        return None if child is None else child.pid

    def store(self, journal_id: str, lock_fd: int, batches: list[Batch]) -> tuple[int, int]:
        """Store the batches, oldest first, with the mark (journal_id, last batch's last);
        (records written, malformed records dropped). A child found dead is restarted and
        the batches sent again (once); UnavailableError when the store fails."""
        message = (PROTOCOL, journal_id, [b.wire() for b in batches])
        with self._lock:
            for attempt in (1, 2):
                child = self._child
                if child is None or child.poll() is not None:
                    if child is not None:
                        self._reap(child)
                    child = self._start(lock_fd)
                stdin, stdout = child.stdin, child.stdout
                if stdin is None or stdout is None:
                    raise AssertionError("the writer process was started without pipes")
                try:
                    send(stdin, (*message, self._check))
                    reply = receive(stdout)
                except (BrokenPipeError, ConnectionResetError, OSError) as exc:
                    log.warning("prediction log writer process lost (%s)", exc)
                    reply = None
                if reply is None:  # died before answering: it may have written part
                    self._check = True
                    self._reap(child)
                    if attempt == 2:
                        raise UnavailableError("the prediction log's writer process died twice")
                    continue
                if reply[0] == "ok":
                    self._check = False
                    return int(reply[1]), int(reply[2])
                self._check = True
                raise UnavailableError(str(reply[1]))
        raise AssertionError("unreachable")

    def _start(self, lock_fd: int) -> subprocess.Popen[bytes]:
        try:
            child = subprocess.Popen(
                [sys.executable, *self.command, str(self.root), str(lock_fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=(lock_fd,),
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            )
        except OSError as exc:
            raise UnavailableError(
                f"cannot start the prediction log's writer process: {exc}"
            ) from exc
        if self._child is not None:
            self.restarts += 1
            log.warning("prediction log writer process restarted (pid %d)", child.pid)
        self._child = child
        return child

    def _reap(self, child: subprocess.Popen[bytes]) -> None:
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if child.poll() is None:
            child.kill()
        child.wait()

    def close(self) -> None:
        """Let the child finish and exit (EOF on its pipe); killed after CLOSE_TIMEOUT_S."""
        with self._lock:
            child, self._child = self._child, None
            if child is None:
                return
            try:
                if child.stdin is not None:
                    child.stdin.close()
                child.wait(CLOSE_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired):
                log.warning("prediction log writer process did not stop: killed")
            self._reap(child)
