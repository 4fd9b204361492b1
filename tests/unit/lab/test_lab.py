"""Every lab experiment runs quick and writes its report, plots and results."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsd.cli.main import app
from mlsd.errors import NotFoundError
from mlsd.lab import EXPERIMENTS, experiment_named
from tests.unit.lab.conftest import QuickRun


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_answers_with_numbers_quick(name: str, quick_report: QuickRun) -> None:
    report = quick_report(name)
    text = report.read_text(encoding="utf-8")
    experiment = experiment_named(name)
    assert experiment.question in text
    answer = next(p for p in text.split("\n\n") if p.startswith("**Answer**"))
    assert len(re.findall(r"\d[\d,.]*", answer)) >= 3, "the answer gives measured numbers"
    assert "## Method" in text
    assert "## Results" in text
    out = report.parent
    pngs = sorted(out.glob("*.png"))
    assert pngs
    assert all(p.stat().st_size > 5_000 for p in pngs)
    assert all(f"]({p.name})" in text for p in pngs)
    results = json.loads((out / "results.json").read_text())
    assert results["experiment"] == name
    assert results["quick"] is True
    assert results["table"]
    assert not (out / "work").exists(), "the scratch folder is removed"


def test_an_unknown_experiment_names_the_known_ones() -> None:
    with pytest.raises(NotFoundError, match="batch-size"):
        experiment_named("no-such-experiment")


def test_the_cli_lists_and_refuses_an_unknown_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSD_HOME", str(tmp_path))
    runner = CliRunner()
    listed = runner.invoke(app, ["lab", "list"])
    assert listed.exit_code == 0
    assert "batch-size" in listed.output
    from mlsd.cli.main import run

    monkeypatch.setattr("sys.argv", ["mlsd", "lab", "run", "nope"])
    with pytest.raises(SystemExit) as exited:
        run()
    assert exited.value.code == NotFoundError.exit_code
