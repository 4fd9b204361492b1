"""`mlsd monitor fairness`: a planted false-decline gap found, and clear no-data errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsd.cli.main import app
from mlsd.errors import NotFoundError, ValidationError

HOUR0 = ("--from", "2026-03-02T12:00", "--to", "2026-03-02T13:00")


def run(*args: str) -> str:
    result = CliRunner().invoke(app, ["monitor", "fairness", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def test_the_planted_region_gap_and_its_interval(monitor_home: Path) -> None:
    out = run(*HOUR0)
    assert "fairness of fraud/2 by region" in out
    assert "gap of false_positive_rate:" in out
    assert "(north-west - " in out
    (report,) = json.loads(run(*HOUR0, "--json"))
    gap = next(g for g in report["gaps"] if g["metric"] == "false_positive_rate")
    assert gap["highest"] == "north-west"
    assert 0.05 < gap["gap"] < 0.15  # 1 in 10 genuine north-west transactions declined
    assert 0 < gap["low"] < gap["gap"] < gap["high"]
    assert gap["p_value"] < 0.001
    assert report["unlabelled"] == 0
    assert report["labelled"] > 1000
    (ages,) = json.loads(run(*HOUR0, "--by", "age_band", "--json"))
    assert [s["segment"] for s in ages["segments"]] == ["18-29", "30-44", "45-64", "65+"]
    unbiased = json.loads(run("--from", "2026-03-02T13:00", "--to", "2026-03-02T14:00",
                              "--json"))[0]  # fmt: skip
    fpr = next(g for g in unbiased["gaps"] if g["metric"] == "false_positive_rate")
    assert fpr["gap"] == 0.0
    assert fpr["high"] == 0.0
    assert fpr["p_value"] == 1.0


def test_the_gauges_textfile(monitor_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "fairness.prom"
    run(*HOUR0, "--textfile", str(path))
    text = path.read_text()
    assert (
        'mlsd_fairness_gap{by="region",metric="false_positive_rate",model="fraud",version="2"}'
        in text
    )
    assert "NaN" not in text


def test_no_data_states_are_errors_with_exit_codes(monitor_home: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no answered prediction logged"):
        run("--from", "2026-03-05", "--to", "2026-03-06")
    with pytest.raises(NotFoundError, match="none with a label known by 2018-04-02"):
        run(*HOUR0, "--as-of", "2018-04-02")
    with pytest.raises(NotFoundError, match="version 9"):
        run(*HOUR0, "--version", "9")
    with pytest.raises(NotFoundError, match="not a dataset folder"):
        run(*HOUR0, "--labels", str(tmp_path))
    with pytest.raises(ValidationError, match="--by: expected one of region, age_band"):
        run(*HOUR0, "--by", "income")
    with pytest.raises(ValidationError, match="before it starts"):
        run("--from", "2026-03-03", "--to", "2026-03-02")
    result = CliRunner().invoke(app, ["monitor", "fairness", "--help"])
    assert "--by" in result.output
    assert "--as-of" in result.output
