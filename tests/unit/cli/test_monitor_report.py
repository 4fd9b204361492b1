"""`mlsd monitor report`: what changed, written as Markdown, JSON and PNG; stated no-data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsd.cli.main import app
from mlsd.errors import NotFoundError, ValidationError

PNG = b"\x89PNG\r\n\x1a\n"


def run(out: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["monitor", "report", "--out", str(out), *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return (out / "report.md").read_text()


def window(hour: int) -> tuple[str, str]:
    return ("--from", f"2026-03-02T{12 + hour}:00", "--to", f"2026-03-02T{13 + hour}:00")


def test_the_shift_the_latency_and_the_labels(monitor_home: Path, tmp_path: Path) -> None:
    md = run(tmp_path, *window(1))
    assert "inputs of fraud/2: 1 feature(s) drifted against the reference: f1" in md
    assert "moved most since the window before (fraud/2): f1" in md
    assert "latency p50 2.4 -> 10.4 ms" in md
    assert "labels: AUC " in md
    assert "; before: AUC " in md
    data = json.loads((tmp_path / "report.json").read_text())
    (drift,) = data["drift"]
    assert drift["features"][0]["name"] == "f1"
    assert drift["features"][0]["psi_before"] > 1
    assert data["previous"]["predictions"] == data["window"]["predictions"]
    assert data["window"]["latency_ms"]["p50"] > 4 * data["previous"]["latency_ms"]["p50"]
    for name in ("scores.png", "latency.png", "features.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
        assert f"![{name}]({name})" in md


def test_parts_without_data_say_so(monitor_home: Path, tmp_path: Path) -> None:
    first = run(tmp_path / "a", *window(0))
    assert "the window before holds none: no before/after comparison" in first
    old = run(tmp_path / "b", *window(2))
    assert "inputs of fraud/1: registered without a reference profile" in old
    assert "new: fraud/1; gone: fraud/2" in old
    half = run(tmp_path / "e", "--from", "2026-03-02T14:30", "--to", "2026-03-02T15:00")
    assert (
        "inputs of fraud/1: registered without a reference profile (an older version): "
        "drift against the window before only" in half
    )
    assert "| f1 | — | " in half  # no PSI against a reference, one against the first half
    # 150 rows a side: noise alone makes PSI about 9 * (1/150 + 1/150) at 10 bins
    assert "gives a PSI of about 0.060 against the reference and 0.120 against" in half
    unknown = run(tmp_path / "c", *window(3))
    assert "inputs of fraud/7: unknown to the registry" in unknown
    early = run(tmp_path / "d", *window(1), "--as-of", "2018-04-02")
    assert "labels: no label known yet (0 of 5,145 labelled)" in early
    for folder in "abcde":
        text = (tmp_path / folder / "report.json").read_text()
        json.loads(text)
        assert "NaN" not in text


def test_bad_input(monitor_home: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no answered prediction logged"):
        run(tmp_path, "--from", "2026-03-05", "--to", "2026-03-06")
    with pytest.raises(NotFoundError, match="9"):
        run(tmp_path, *window(1), "--version", "9")
    with pytest.raises(NotFoundError, match="not a dataset folder"):
        run(tmp_path, *window(1), "--labels", str(tmp_path))
    with pytest.raises(ValidationError, match="before it starts"):
        run(tmp_path, "--from", "2026-03-03", "--to", "2026-03-02")


def test_an_empty_window_exits_3_with_one_line(monitor_home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MLSD_HOME": str(monitor_home)}
    done = subprocess.run(
        [sys.executable, "-c", "from mlsd.cli.main import run; run()", "monitor", "report",
         "--from", "2026-03-05", "--to", "2026-03-06", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("error: no answered prediction logged")
    assert "Traceback" not in done.stderr
