"""Real processes: a register killed mid-transaction, and concurrent registering."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlsd.registry import Registry
from mlsd.registry.testing import register_sample
from mlsd.settings import Settings

WORKER = Path(__file__).with_name("worker.py")


def _worker(home: Path, db_url: str, count: int, go: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(home), db_url, str(count), str(go), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_killed_register_leaves_nothing_visible(db_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    go.touch()
    proc = _worker(tmp_path, db_url, 2, go, "hang")
    assert proc.stdout is not None
    lines = [proc.stdout.readline().strip() for _ in range(3)]
    assert lines == ["READY", "1", "INSIDE"], proc.stderr.read() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    settings = Settings(home=tmp_path, registry_db=db_url)
    with Registry.open(settings) as registry:
        assert [v.version for v in registry.search(name="fraud")] == [1]
        assert registry.latest("fraud").version == 1
        assert registry.search(tag_key="worker", tag_value="1") == []
        after = register_sample(registry)  # the lock died with the process
        assert after.version == 2
        assert registry.get("fraud", 2).tags == {}


@pytest.mark.slow
def test_concurrent_processes_get_distinct_versions(db_url: str, tmp_path: Path) -> None:
    with Registry.open(Settings(home=tmp_path, registry_db=db_url)):
        pass  # create the tables once, as a deployed registry would have them
    count, workers, go = 25, 3, tmp_path / "go"
    procs = [_worker(tmp_path, db_url, count, go) for _ in range(workers)]
    for proc in procs:  # every worker set up and waiting: start them together
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
    go.touch()
    versions: list[int] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        versions += [int(line) for line in out.split()]
    assert sorted(versions) == list(range(1, count * workers + 1))
    with Registry.open(Settings(home=tmp_path, registry_db=db_url)) as registry:
        assert registry.latest("fraud").version == count * workers
        assert len(registry.search(name="fraud")) == count * workers
