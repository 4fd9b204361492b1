"""`mlsd predictions summary`: reads the stored log, writes nothing, refuses bad times."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from mlsd.cli.main import app
from mlsd.predlog import PredictionRecord, make_prediction_log
from mlsd.settings import Settings

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def test_summary_of_the_stored_log(home: Path) -> None:
    plog = make_prediction_log(Settings(home=home))
    plog.append([
        PredictionRecord(f"r{i}", T0 + timedelta(seconds=i), "fraud", "1", [1.0], 0.5,
                         "fraud" if i == 0 else "legit", 0.5, 2.0)
        for i in range(4)
    ])  # fmt: skip
    plog.close()
    before = sorted(p.name for p in home.rglob("*"))
    args = ["predictions", "summary", "--json", "--since", "2026-05-01T12:00:01"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["predictions"] == 3
    assert figures["by_version"] == {"fraud/1": 3}
    assert figures["fraud_share"] == 0.0
    assert sorted(p.name for p in home.rglob("*")) == before
    table = CliRunner().invoke(app, ["predictions", "summary"])
    assert table.exit_code == 0
    assert "fraud/1" in table.output


def test_a_bad_time_names_the_option(home: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from mlsd.cli.main import run; run()", "predictions", "summary",
         "--since", "yesterday"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "since" in out.stderr
