"""The Parquet log's writer process: what the flusher hands it is stored once, whatever
is killed (the child, mid-stream or between its store and its answer; the serving
process, a real one), malformed records are dropped and counted, and `close` leaves no
child behind."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlsd.errors import UnavailableError
from mlsd.predlog import ParquetPredictionLog
from mlsd.predlog.journal import claim_dead

from .test_predlog_block import block
from .test_predlog_journal import record

HARNESS = Path(__file__).with_name("writer_dies_after_store.py")


def _log(root: Path, **kwargs: object) -> ParquetPredictionLog:
    options: dict[str, object] = {"flush_seconds": 60, "compact_every_s": None}
    options.update(kwargs)
    return ParquetPredictionLog(root, writer="process", **options)  # type: ignore[arg-type]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_records_and_blocks_are_stored_by_the_child_and_read_back(tmp_path: Path) -> None:
    plog = _log(tmp_path)
    try:
        plog.append([record(i) for i in range(5)])
        seq = plog.append(block(100, 20))
        assert plog.flush() == 25
        child = plog._offload.pid if plog._offload else None
        assert child is not None
        assert child != os.getpid()
        assert plog.durable_seq == seq
        assert plog.stats().written == 25
        assert plog.stats().buffered == 0
        segments = sorted((tmp_path / ".journal").glob("*.seg"))
        assert [int(p.name.split(".")[1]) for p in segments] == [2], "the first is stored"
        frame = plog.read()
        expected = {record(i).request_id for i in range(5)} | {
            r.request_id for r in block(100, 20).records()
        }
        assert set(frame["request_id"]) == expected
        assert frame["request_id"].is_unique
        assert all(name.count("-") >= 3 for name in _part_names(tmp_path)), "marked"
    finally:
        plog.close()


def _part_names(root: Path) -> list[str]:
    return [p.name for p in root.glob("date=*/part-*.parquet")]


def test_a_malformed_record_is_dropped_and_counted_not_blocking(tmp_path: Path) -> None:
    plog = _log(tmp_path)
    try:
        seq = plog.append([record(1), record(2, score="not a number"), record(3)])
        assert plog.wait_durable(seq, timeout=60.0)
        assert plog.stats().dropped == 1
        assert sorted(plog.read()["request_id"]) == ["r1", "r3"]
    finally:
        plog.close()


def test_a_batch_the_journal_failed_on_is_encoded_here_and_stored(tmp_path: Path) -> None:
    plog = _log(tmp_path)
    journal = plog._journal
    assert journal is not None
    real_write = journal.write

    def failed_write(records: object, first_seq: int) -> None:
        journal.errors += 1  # what a full disk does: counted, the records only in memory

    try:
        plog.append([record(1)])
        journal.write = failed_write  # type: ignore[method-assign,assignment]
        plog.append([record(2), record(3, score="bad")])
        journal.write = real_write  # type: ignore[method-assign]
        plog.flush()
        plog.append([record(4)])
        plog.flush()
        assert sorted(plog.read()["request_id"]) == ["r1", "r2", "r4"]
        assert plog.stats().dropped == 1
        assert plog.stats().written == 3
    finally:
        plog.close()


def test_a_child_killed_mid_stream_is_restarted_nothing_lost_or_doubled(tmp_path: Path) -> None:
    plog = _log(tmp_path)
    offload = plog._offload
    assert offload is not None
    try:
        for round_ in range(4):
            plog.append([record(round_ * 10 + i) for i in range(10)])
            plog.flush()
            pid = offload.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)  # dead before the next batch is sent
            plog.append(block(1000 + round_ * 10, 10))
        plog.flush()
        assert offload.restarts == 4
        frame = plog.read()
        assert len(frame) == 80
        assert frame["request_id"].is_unique
    finally:
        plog.close()


def test_a_child_killed_between_its_store_and_its_answer_is_not_doubled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child stores the batch, then dies by SIGKILL before answering: the retry sends
    it again with `check`, and the marks in the stored file's name say it is stored."""
    monkeypatch.setenv("MLSD_TEST_DIE_MARKER", str(tmp_path / "died"))
    plog = _log(tmp_path / "log")
    offload = plog._offload
    assert offload is not None
    offload.command = (str(HARNESS),)
    try:
        seq = plog.append([record(i) for i in range(7)])
        assert plog.flush() == 7
        assert (tmp_path / "died").exists(), "the first child died after its store"
        assert offload.restarts == 1
        assert plog.durable_seq == seq
        plog.append([record(7)])
        plog.flush()
        frame = plog.read()
        assert sorted(frame["request_id"]) == sorted(f"r{i}" for i in range(8))
        assert len(_part_names(tmp_path / "log")) == 2
    finally:
        plog.close()


def test_a_store_failing_in_the_child_keeps_the_batch_for_the_next_flush(tmp_path: Path) -> None:
    plog = _log(tmp_path)
    try:
        plog.append([record(1)])
        blocker = tmp_path / f"date={record(1).ts.date().isoformat()}"
        blocker.write_text("a file where the day's folder goes")  # mkdir fails in the child
        with pytest.raises(UnavailableError, match="cannot write the prediction log"):
            plog.flush()
        assert plog.stats().buffered == 1
        assert plog.stats().write_errors == 1
        blocker.unlink()
        plog.append([record(2)])
        assert plog.flush() == 2
        assert sorted(plog.read()["request_id"]) == ["r1", "r2"]
    finally:
        plog.close()


def test_close_leaves_no_child_behind_and_no_journal(tmp_path: Path) -> None:
    plog = _log(tmp_path)
    plog.append([record(i) for i in range(3)])
    plog.flush()
    pid = plog._offload.pid if plog._offload else None
    assert pid is not None
    plog.append([record(3)])
    plog.close()
    assert _gone(pid), "close waits for the child (it is reaped, not a zombie)"
    assert os.listdir(tmp_path / ".journal") == []
    assert len(plog.read()) == 4


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tests.unit.predlog.test_predlog_journal import record
    from mlsd.predlog import ParquetPredictionLog

    plog = ParquetPredictionLog(Path(sys.argv[1]), flush_seconds=0.02, flush_records=50,
                                compact_every_s=None, writer="process")
    i = 0
    while True:
        batch = [record(i + k) for k in range(25)]
        plog.append(batch)
        i += 25
        print(i, plog._offload.pid, flush=True)  # every record below i is journaled
    """
)


def test_the_serving_process_killed_a_new_writer_replays_each_record_once(
    tmp_path: Path,
) -> None:
    root = tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    appended, child = 0, None
    try:
        for line in proc.stdout:
            count, pid = line.split()
            appended = int(count)
            child = None if pid == b"None" else int(pid)
            # killed once the child has stored some batches and more are in flight
            if child is not None and appended >= 2_000 and _part_names(root):
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert child is not None, "the writer process was started"
    dead = claim_dead(root / ".journal")  # waits for the orphaned child to let go
    assert len(dead) == 1
    for journal in dead:
        journal.release()
    assert _gone(child) or _zombie(child)
    plog = ParquetPredictionLog(root, compact_every_s=None, writer="process")
    try:
        frame = plog.read()
    finally:
        plog.close()
    ids = frame["request_id"]
    assert ids.is_unique, "a record stored twice"
    stored = {int(i[1:]) for i in ids}
    assert set(range(appended)) <= stored, "a journaled record lost"
    assert plog.stats().replayed > 0 or len(stored) == appended


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True


def test_a_held_lock_whose_owner_is_gone_is_waited_for_not_taken_for_alive(
    tmp_path: Path,
) -> None:
    """The lock of a killed owner, still held by its writer process, is claimed once that
    process lets go; a lock held by a live owner is not waited for."""
    plog = _log(tmp_path, flush_seconds=60)
    lock_path = tmp_path / ".journal" / f"{plog.journal_id}.lock"
    assert claim_dead(tmp_path / ".journal") == []  # alive: the pid in it is ours
    plog.close()
    folder = tmp_path / "j"
    folder.mkdir()
    held = folder / "dead.lock"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    held.write_text(f"{gone.pid}\n")
    holder = subprocess.Popen(  # the orphan: holds the lock until told to let go
        [sys.executable, "-c",
         "import fcntl, sys; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX);"
         " print('held', flush=True); sys.stdin.read()", str(held)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert holder.stdout is not None
    assert holder.stdin is not None
    assert holder.stdout.readline() == b"held\n"
    holder.stdin.close()  # EOF: it exits, as a writer process does when its owner dies
    try:
        dead = claim_dead(folder)
    finally:
        holder.wait(timeout=30)
        holder.stdout.close()
    assert [d.id for d in dead] == ["dead"]
    fd = os.open(held, os.O_RDWR)
    with pytest.raises(BlockingIOError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # claimed: we hold it now
    os.close(fd)
    dead[0].release()
    assert not lock_path.exists()


def test_the_writer_is_checked_and_without_a_journal_the_thread_writes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="writer must be one of process, thread"):
        ParquetPredictionLog(tmp_path / "a", writer="fork")
    plog = ParquetPredictionLog(tmp_path / "b", writer="process", journal=False)
    try:
        assert plog.writer == "thread"
        assert plog._offload is None
        plog.append([record(1)])
        assert plog.flush() == 1
    finally:
        plog.close()


def test_the_setting_picks_the_writer(tmp_path: Path) -> None:
    from mlsd.predlog import make_prediction_log
    from mlsd.settings import Settings

    for writer in ("process", "thread"):
        settings = Settings(home=tmp_path / writer, prediction_log_writer=writer)
        plog = make_prediction_log(settings)
        try:
            assert isinstance(plog, ParquetPredictionLog)
            assert plog.writer == writer
        finally:
            plog.close()
    assert Settings(home=tmp_path).prediction_log_writer == "thread", "the default, as measured"
