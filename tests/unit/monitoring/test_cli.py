"""`mlsd monitor drift`: the per-feature table, and clear errors for bad windows."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsd.cli.main import app
from mlsd.errors import ConfigError, NotFoundError, ValidationError
from mlsd.predlog import ParquetPredictionLog
from mlsd.registry import Registry
from mlsd.registry.profile import MissingProfileError
from mlsd.settings import Settings
from tests.unit.monitoring.helpers import T0, records, register_profiled, register_unprofiled


@pytest.fixture
def logged(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """fraud/1 without a profile, fraud/2 with one; the log holds 2,000 rows of v2 (f1
    shifted) the first hour, 300 of v1 the next hour, 50 of v7 (unknown) the third."""
    monkeypatch.setenv("COLUMNS", "200")
    settings = Settings(home=home)
    with Registry.open(settings) as registry:
        register_unprofiled(registry)
        register_profiled(registry)
    log = ParquetPredictionLog(settings.path("predictions"), compact_every_s=None, journal=False)
    log.append(records(2, 2000, shift=0.5))
    log.append(records(1, 300, start=T0 + timedelta(hours=1)))
    log.append(records(7, 50, start=T0 + timedelta(hours=2)))
    log.close()
    return home


def run(*args: str) -> str:
    result = CliRunner().invoke(app, ["monitor", "drift", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def test_the_table_ranks_the_shifted_feature_first(logged: Path) -> None:
    out = run("--from", "2026-03-02T12:00", "--to", "2026-03-02T13:00")
    assert "drift of fraud/2: 2,000 predictions" in out
    lines = [line for line in out.splitlines() if line.startswith(("│ f", "| f"))]
    assert lines[0].split()[1] == "f1"
    assert "major" in lines[0]
    assert "(score)" in out
    assert "(joint: PCA error)" in out
    assert "drifted (PSI > 0.1): f1" in out
    (report,) = json.loads(run("--from", "2026-03-02T12:00", "--to", "2026-03-02T13:00", "--json"))
    assert report["version"] == 2
    assert report["n_rows"] == 2000
    assert max(report["features"], key=lambda f: f["psi"])["name"] == "f1"


def test_bad_windows(logged: Path) -> None:
    with pytest.raises(NotFoundError, match="no prediction logged"):
        run("--from", "2026-03-03", "--to", "2026-03-04")
    with pytest.raises(NotFoundError, match="of model 'other'"):
        run("--from", "2026-03-02", "--to", "2026-03-03", "--model", "other")
    with pytest.raises(MissingProfileError, match="models:/fraud/1 has no reference profile"):
        run("--from", "2026-03-02T13:00", "--to", "2026-03-02T14:00")
    with pytest.raises(MissingProfileError, match="holds fraud/2, fraud/1: pick one"):
        run("--from", "2026-03-02", "--to", "2026-03-02T14:00")
    assert "fraud/2" in run("--from", "2026-03-02", "--to", "2026-03-02T14:00", "--version", "2")
    with pytest.raises(NotFoundError, match="7"):
        run("--from", "2026-03-02T14:00", "--to", "2026-03-02T15:00")
    with pytest.raises(ValidationError, match="before it starts"):
        run("--from", "2026-03-03", "--to", "2026-03-02")
    with pytest.raises(ValidationError, match="not an ISO date"):
        run("--from", "yesterday", "--to", "2026-03-02")


def test_errors_are_one_line_and_an_exit_code(logged: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlsd.cli.main", "monitor", "drift", "--from", "2026-03-02T13:00",
         "--to", "2026-03-02T14:00"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 3
    assert "no reference profile" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alert-rules", "/nonexistent/rules.yml"], "does not exist"),
        (["--alert-webhook", "ftp://example/hook"], "http"),
    ],
)
def test_serve_refuses_bad_alert_settings_before_starting(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["serve", "--port", "1", *args])
    assert isinstance(result.exception, ConfigError)
    assert message in result.exception.message


def test_drift_over_time(logged: Path) -> None:
    out = run(
        "--from", "2026-03-02T12:00", "--to", "2026-03-02T13:00", "--every", "15m", "--version", "2"
    )
    assert out.count("fraud/2") == 3  # 2,000 rows one a second: 33 min in 15-minute windows
    assert "no data" in out
    assert "f1" in out
    windows = json.loads(
        run("--from", "2026-03-02T12:00", "--to", "2026-03-02T13:00", "--every", "15m",
            "--version", "2", "--json")
    )  # fmt: skip
    assert [sum(r["n_rows"] for r in w["reports"]) for w in windows] == [900, 900, 200, 0]
    with pytest.raises(ValidationError, match="30m, 6h or 1d"):
        run("--from", "2026-03-02", "--to", "2026-03-03", "--every", "soon")
    with pytest.raises(ValidationError, match="windows"):
        run("--from", "2026-03-02", "--to", "2036-03-03", "--every", "1m")
    with pytest.raises(NotFoundError, match="no prediction"):
        run("--from", "2026-03-05", "--to", "2026-03-06", "--every", "1h")
