"""`mlsd demo` end to end on embedded defaults: every stage runs and leaves its files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_every_stage_and_stops_by_itself(home: Path) -> None:
    proc = _demo(home, "--for", "2", timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    stages = (
        "simulate",
        "features",
        "train, register",
        "alias history",
        "serving",
        "prediction log",
    )
    for stage in stages:
        assert stage in out
    assert "parity (online vs offline) │ 100.0%" in out
    for folder in ("datasets", "features", "registry", "predictions", "reports"):
        assert (home / folder).is_dir(), folder
    assert list((home / "reports").glob("*.png"))
    assert list((home / "predictions").rglob("*.parquet")), "the served traffic was not logged"


def test_demo_refuses_a_nonsense_duration(home: Path) -> None:
    proc = _demo(home, "--for", "0", timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert not (home / "datasets").exists()


def _demo(home: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`mlsd demo ARGS` in a fresh process on the data folder `home`."""
    return subprocess.run(
        [sys.executable, "-m", "mlsd.cli.main", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "MLSD_HOME": str(home), "COLUMNS": "120"},
    )
