"""Compaction of the Parquet prediction log: a day's many part files merged into one.

Layout of a day folder `{root}/date=YYYY-MM-DD/`:

- `part-<time>-<id>.parquet`: one per flush (written to a hidden `.tmp` name, renamed);
  a writer with a journal names it `part-<time>-<journal id>-<seq>.parquet`: the file
  holds that journal's records of this day up to number `seq` (the journal's mark);
- `compact-<time>-<id>.parquet`: a merged file. Its Parquet footer holds, under the key
  `mlsd.replaces`, the JSON list of the file names whose records it holds, and under
  `mlsd.journals` the highest mark per journal id of those files, so a replay still
  knows what is stored after the parts are gone (`journal_marks`);
- hidden `.*.tmp` files: writes in progress (or left by a crash), never read.

**Which files are live** (`live_files`): every part and compact file, minus every name
that some compact file of the folder says it replaces. Names carry a random id and are
never reused, so a name listed as replaced is always safe to skip: its records are in the
compact file that lists it (or, transitively, in the one that replaced that).

**Compaction of a day** (`compact_day`), under an exclusive `flock` on the day's
`.compact.lock` (two compactors must never merge the same parts twice; writers need no
lock, they only add new parts, which a running compaction does not list):

1. list the live files (the set S to merge) and drop stale `.compact-*.tmp` files;
2. stream S into the hidden `.compact-<id>.parquet.tmp`, footer `mlsd.replaces = S`;
3. fsync it and `os.replace` it to `compact-<id>.parquet`: the **commit point**. From
   this instant readers skip every file of S, before it they read S and ignore the
   temporary file, so no reader ever counts a record twice or misses one;
4. delete the files of S (now dead), oldest first.

A crash before 3 leaves S live and a stale temporary file (removed by the next
compaction); a crash during 4 leaves dead files, skipped by readers and deleted by the
next compaction (`cleanup`). Readers that list files while a compaction deletes them
retry (`read_live`). Outside readers (DuckDB, Spark) must read `live_files(...)`, not a
`*.parquet` glob, which would count the dead files of an interrupted compaction.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlsd.predlog.record import SCHEMA

log = logging.getLogger(__name__)

REPLACES_KEY = b"mlsd.replaces"
JOURNALS_KEY = b"mlsd.journals"
_MARKED_PART = re.compile(r"^part-[0-9T]+-([0-9a-f]{12})-([0-9]+)\.parquet$")
LOCK_NAME = ".compact.lock"
#: Rows per row group of a merged file (parts are small: they are concatenated first).
ROW_GROUP_ROWS = 128_000


@dataclass(frozen=True)
class CompactionResult:
    """What one compaction of a day did."""

    day: date
    merged_files: int
    records: int
    deleted_files: int
    output: Path | None
    seconds: float
    skipped: bool = False  # another compactor held the day's lock


def day_folders(root: Path) -> list[tuple[date, Path]]:
    """The `date=YYYY-MM-DD` folders under root, oldest first (anything else is ignored)."""
    out: list[tuple[date, Path]] = []
    if not root.is_dir():
        return out
    for folder in sorted(root.glob("date=*")):
        if not folder.is_dir():
            continue
        try:
            out.append((date.fromisoformat(folder.name.removeprefix("date=")), folder))
        except ValueError:
            continue
    return out


def replaced_by(path: Path) -> list[str]:
    """The file names a compact file says it replaces (from its Parquet footer)."""
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(REPLACES_KEY)
    if raw is None:
        return []
    names: list[str] = json.loads(raw)
    return names


def part_name(stamp: str, mark: tuple[str, int] | None) -> str:
    """A part file's name: with a journal mark (id, seq) when the writer has a journal."""
    if mark is None:
        return f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
    return f"part-{stamp}-{mark[0]}-{mark[1]}.parquet"


def _marks_of(files: list[Path]) -> dict[str, int]:
    """The highest journal mark per journal id of these files (names, compact footers)."""
    marks: dict[str, int] = {}
    for f in files:
        found: dict[str, int] = {}
        matched = _MARKED_PART.match(f.name)
        if matched:
            found = {matched.group(1): int(matched.group(2))}
        elif f.name.startswith("compact-"):
            raw = (pq.read_schema(f).metadata or {}).get(JOURNALS_KEY)
            found = {} if raw is None else {str(k): int(v) for k, v in json.loads(raw).items()}
        for journal_id, seq in found.items():
            marks[journal_id] = max(seq, marks.get(journal_id, 0))
    return marks


def journal_marks(root: Path, day: date) -> dict[str, int]:
    """The highest stored mark per journal id in one day folder: that journal's records of
    this day numbered up to the mark are stored. Waits for a running compaction of the day
    (its lock), which would otherwise move marks from parts to a compact file under us."""
    folder = Path(root) / f"date={day.isoformat()}"
    if not folder.is_dir():
        return {}
    with _day_lock(folder, blocking=True):
        files, _ = _scan(folder)
        return _marks_of(files)


def _scan(folder: Path) -> tuple[list[Path], set[str]]:
    """All part and compact files of a folder (sorted by name), and the replaced names."""
    files = sorted(
        [*folder.glob("part-*.parquet"), *folder.glob("compact-*.parquet")],
        key=lambda p: p.name.removeprefix("compact-").removeprefix("part-"),
    )
    dead: set[str] = set()
    for f in files:
        if f.name.startswith("compact-"):
            try:
                dead.update(replaced_by(f))
            except FileNotFoundError:  # replaced and deleted by a concurrent compaction
                continue
    return files, dead


def live_folder_files(folder: Path) -> list[Path]:
    """The files of one day folder whose records count, in write order."""
    files, dead = _scan(folder)
    return [f for f in files if f.name not in dead]


def live_files(root: Path, first: date = date.min, last: date = date.max) -> list[Path]:
    """The live files of the days first..last (inclusive): what a reader must read."""
    out: list[Path] = []
    for day, folder in day_folders(root):
        if first <= day <= last:
            out.extend(live_folder_files(folder))
    return out


def read_live(root: Path, first: date, last: date, attempts: int = 5) -> pa.Table | None:
    """All live records of days first..last as one table (None when there are none).

    A file deleted between listing and reading (a compaction committed meanwhile, in
    another process) restarts the read from a fresh listing.
    """
    for attempt in range(attempts):
        files = live_files(root, first, last)
        if not files:
            return None
        try:
            return pa.concat_tables([pq.read_table(f, schema=SCHEMA) for f in files])
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    return None  # pragma: no cover - the loop returns or raises


@contextlib.contextmanager
def _day_lock(folder: Path, *, blocking: bool = False) -> Iterator[bool]:
    """An exclusive lock on a day folder; non-blocking, it yields False when someone holds it."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _delete(path: Path) -> bool:
    """Remove a file; False when it was already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def cleanup(folder: Path) -> int:
    """Delete the dead files of a folder (replaced by a committed compact file) and stale
    compaction temporaries. Call only under the day lock. Returns the files deleted."""
    files, dead = _scan(folder)
    deleted = 0
    for f in files:
        if f.name in dead and _delete(f):
            deleted += 1
    for tmp in folder.glob(".compact-*.tmp"):
        _delete(tmp)
    return deleted


def _write_merged(files: list[Path], tmp: Path, stop: Callable[[], bool]) -> int | None:
    """Stream `files` into `tmp` (footer: the names replaced); None if stopped midway."""
    schema = SCHEMA.with_metadata(
        {
            REPLACES_KEY: json.dumps([f.name for f in files]).encode(),
            JOURNALS_KEY: json.dumps(_marks_of(files)).encode(),
        }
    )
    records = 0
    pending: list[pa.Table] = []
    pending_rows = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        for f in files:
            if stop():
                return None
            table = pq.read_table(f, schema=SCHEMA).replace_schema_metadata(schema.metadata)
            pending.append(table)
            pending_rows += table.num_rows
            if pending_rows >= ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
                records += pending_rows
                pending, pending_rows = [], 0
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
            records += pending_rows
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    return records


def _commit(tmp: Path, final: Path) -> None:
    """The commit point: the merged file appears under a name readers read."""
    os.replace(tmp, final)
    with contextlib.suppress(OSError):  # make the rename durable where the OS allows
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def compact_day(
    root: Path, day: date, *, stop: Callable[[], bool] = lambda: False
) -> CompactionResult:
    """Merge the live files of `day` into one compact file (see the module docstring).

    Finishes an interrupted compaction first (deletes dead files). Does nothing when the
    day has at most one live file, or another compactor holds the day (`skipped`).
    `stop()` is polled between files: a stopped compaction commits nothing.
    """
    started = time.perf_counter()
    folder = Path(root) / f"date={day.isoformat()}"

    def result(
        merged: int, records: int, deleted: int, out: Path | None, skipped: bool = False
    ) -> CompactionResult:
        elapsed = time.perf_counter() - started
        return CompactionResult(day, merged, records, deleted, out, elapsed, skipped)

    if not folder.is_dir():
        return result(0, 0, 0, None)
    with _day_lock(folder) as locked:
        if not locked:
            return result(0, 0, 0, None, skipped=True)
        deleted = cleanup(folder)
        files = live_folder_files(folder)
        if len(files) <= 1:
            return result(0, 0, deleted, None)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"compact-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = folder / f".{name}.tmp"
        try:
            records = _write_merged(files, tmp, stop)
        except BaseException:
            _delete(tmp)
            raise
        if records is None:
            _delete(tmp)
            return result(0, 0, deleted, None)
        _commit(tmp, folder / name)
        for f in files:
            if _delete(f):
                deleted += 1
        return result(len(files), records, deleted, folder / name)


def compact_before(
    root: Path, today: date | None = None, *, stop: Callable[[], bool] = lambda: False
) -> list[CompactionResult]:
    """Compact every day folder strictly before `today` (UTC today by default)."""
    limit = today or datetime.now(UTC).date()
    done: list[CompactionResult] = []
    for day, _ in day_folders(Path(root)):
        if day >= limit or stop():
            continue
        outcome = compact_day(root, day, stop=stop)
        if outcome.merged_files or outcome.deleted_files:
            log.info(
                "prediction log %s: %d files merged (%d records), %d deleted in %.2fs",
                day, outcome.merged_files, outcome.records, outcome.deleted_files,
                outcome.seconds,
            )  # fmt: skip
        done.append(outcome)
    return done
