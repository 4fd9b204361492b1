"""`mlsd simulate`: a summary on success; one message, an exit code and nothing written on
nonsense."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsd.cli.main import app
from mlsd.data import io, schema
from mlsd.errors import ConflictError

SMALL = ["--customers", "60", "--terminals", "120", "--days", "5", "--seed", "3"]


def _mlsd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlsd.cli.main", "simulate", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_simulate_writes_a_dataset_and_prints_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = CliRunner().invoke(app, ["simulate", *SMALL, "--out", str(out), "--per-day"])
    assert result.exit_code == 0, result.output
    for words in ("transactions", "fraud rate", "per day", "scenario", "2018-04-05"):
        assert words in result.output
    manifest = io.read_manifest(out)
    assert manifest["config"]["n_customers"] == 60
    assert manifest["config"]["compromised_terminals_per_day"] == 2
    assert manifest["config"]["seed"] == 3
    assert len(list((out / schema.TRANSACTIONS_DIR).iterdir())) == 5


def test_scenarios_file_is_applied(tmp_path: Path) -> None:
    scenarios = tmp_path / "events.json"
    scenarios.write_text(
        json.dumps([{"type": "card_testing", "name": "ct", "start": "2018-04-03",
                     "bursts_per_day": 2, "tx_per_burst": 3}])
    )  # fmt: skip
    out = tmp_path / "ds"
    result = CliRunner().invoke(
        app, ["simulate", *SMALL, "--out", str(out), "--scenarios", str(scenarios)]
    )
    assert result.exit_code == 0, result.output
    assert "ct" in result.output
    tx = io.read_transactions(out)
    assert (tx[schema.INJECTED] == "ct").sum() == 3 * 2 * 3


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--days", "-3"], "n_days"),
        (["--customers", "0"], "n_customers"),
        (["--radius", "0"], "radius"),
        (["--start-date", "April"], "start_date"),
    ],
)
def test_nonsense_config_exits_2_and_writes_nothing(
    tmp_path: Path, args: list[str], field: str
) -> None:
    out = tmp_path / "ds"
    proc = _mlsd(*SMALL, *args, "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert field in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_scenario_file_exits_2(tmp_path: Path) -> None:
    scenarios = tmp_path / "events.json"
    scenarios.write_text(json.dumps([{"type": "meteor", "name": "m", "start": "2018-04-02"}]))
    proc = _mlsd(*SMALL, "--out", str(tmp_path / "a"), "--scenarios", str(scenarios))
    assert proc.returncode == 2
    assert "unknown scenario type" in proc.stderr
    scenarios.write_text(
        json.dumps([{"type": "seasonal", "name": "s", "start": "2019-01-01", "factor": 2}])
    )
    proc = _mlsd(*SMALL, "--out", str(tmp_path / "a"), "--scenarios", str(scenarios))
    assert proc.returncode == 2
    assert "scenarios[0].start" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.json"]


def test_folder_with_other_data_exits_4_untouched(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    proc = _mlsd(*SMALL, "--out", str(tmp_path))
    assert proc.returncode == 4
    assert "other data" in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_existing_dataset_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    runner = CliRunner()
    assert runner.invoke(app, ["simulate", *SMALL, "--out", str(out)]).exit_code == 0
    first = io.read_manifest(out)["created_at"]
    again = runner.invoke(app, ["simulate", *SMALL, "--out", str(out)])
    assert isinstance(again.exception, ConflictError)
    assert io.read_manifest(out)["created_at"] == first
    args = ["simulate", *SMALL, "--seed", "4", "--out", str(out), "--overwrite"]
    replaced = runner.invoke(app, args)
    assert replaced.exit_code == 0, replaced.output
    assert io.read_manifest(out)["config"]["seed"] == 4


def test_scale_fraud(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = CliRunner().invoke(app, ["simulate", *SMALL, "--out", str(out), "--scale-fraud"])
    assert result.exit_code == 0, result.output
    config = io.read_manifest(out)["config"]
    assert config["compromised_terminals_per_day"] == 2 * 120 / 10_000
    assert config["compromised_customers_per_day"] == 3 * 60 / 5_000
