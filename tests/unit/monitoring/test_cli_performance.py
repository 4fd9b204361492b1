"""`mlsd monitor performance`: the table as labels land, JSON, triggers, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlsd.cli.main import app
from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.io import write_dataset
from mlsd.data.simulator import simulate
from mlsd.errors import NotFoundError, ValidationError
from mlsd.monitoring.window import NoDataError
from mlsd.predlog import ParquetPredictionLog
from mlsd.registry import Registry
from mlsd.settings import Settings
from tests.unit.monitoring.perf_helpers import Stream, register_calibrated


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A simulated dataset (labels 7 days late) in home/dataset; fraud/1 calibrated on its
    first 20 days; its days 20-29 logged with a score that knows the label half the time,
    except from day 25 on, when the model has gone blind (scores are noise)."""
    monkeypatch.setenv("MLSD_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    dataset = simulate(SimulatorConfig.scaled(300, 600, n_days=30, seed=3))
    write_dataset(dataset, tmp_path / "dataset")
    tx = dataset.transactions.copy()
    rng = np.random.default_rng(0)
    noise = rng.beta(1.0, 20.0, size=len(tx))
    tx["score"] = np.where(rng.uniform(size=len(tx)) < 0.5, tx[schema.TX_FRAUD] * 0.9, 0) + noise
    day = tx[schema.TX_TIME_DAYS]
    tx.loc[day >= 25, "score"] = noise[(day >= 25).to_numpy()]
    tx["score"] = tx["score"].clip(0, 1)
    settings = Settings(home=tmp_path)
    with Registry.open(settings) as registry:
        register_calibrated(registry, Stream(tx[day < 20].reset_index(drop=True)))
    log = ParquetPredictionLog(settings.path("predictions"), compact_every_s=None, journal=False)
    log.append(Stream(tx[day >= 20].reset_index(drop=True)).records(1))
    log.close()
    return tmp_path


def run(*args: str) -> str:
    result = CliRunner().invoke(app, ["monitor", "performance", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def first_day(home: Path) -> pd.Timestamp:
    return pd.Timestamp("2018-04-01", tz="UTC") + pd.Timedelta(days=20)


def test_the_table_fills_in_as_labels_land(home: Path) -> None:
    start = first_day(home)
    window = ("--from", str(start.date()), "--to", str((start + pd.Timedelta(days=3)).date()))
    early = run(*window, "--as-of", str((start + pd.Timedelta(days=3)).date()))
    assert early.count("no labels yet") == 3
    assert "fraud/1" in early
    late = json.loads(run(*window, "--as-of", "2030-01-01", "--json", "--top-k", "5"))
    assert [w["label_coverage"] for w in late["windows"]] == [1.0, 1.0, 1.0]
    assert all(0.5 < w["auc"] <= 1.0 for w in late["windows"])
    assert all(w["estimated_auc"] is not None for w in late["windows"])
    assert late["windows"][0]["label_lag_seconds"] == 7 * 86_400
    assert late["windows"][0]["top_k"] == 5


def test_triggers_are_written_as_json_lines(home: Path) -> None:
    start = first_day(home)
    out = home / "triggers.jsonl"
    text = run("--from", str(start.date()), "--to", str((start + pd.Timedelta(days=10)).date()),
               "--as-of", "2030-01-01", "--triggers-out", str(out))  # fmt: skip
    assert "retrain trigger auc_drop" in text
    events = [json.loads(line) for line in out.read_text().splitlines()]
    drops = [e for e in events if e["rule"] == "auc_drop"]
    assert {e["window_start"][:10] for e in drops} == {f"2018-04-{d}" for d in range(26, 31)}
    assert all(e["value"] < e["threshold"] and e["label_coverage"] == 1.0 for e in drops)
    # the same days before their labels land: nothing label-based can fire
    early = home / "early.jsonl"
    ten = str((start + pd.Timedelta(days=10)).date())
    run("--from", str(start.date()), "--to", ten, "--as-of", ten, "--triggers-out", str(early))
    found = [json.loads(line) for line in early.read_text().splitlines()] if early.exists() else []
    assert [e for e in found if e["rule"] == "auc_drop"] == []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--from", "2030-01-01", "--to", "2030-01-02"], NoDataError),
        (["--from", "2018-04-21", "--to", "2018-04-22", "--model", "fraud", "--version", "9"],
         NotFoundError),
        (["--from", "2018-04-21", "--to", "2018-04-20"], ValidationError),
        (["--from", "yesterday", "--to", "2018-04-20"], ValidationError),
        (["--from", "2018-04-21", "--to", "2018-04-22", "--window", "0d"], ValidationError),
        (["--from", "2018-04-21", "--to", "2018-04-22", "--dataset", "/nonexistent"],
         NotFoundError),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_error(home: Path, args: list[str], error: type[Exception]) -> None:
    result = CliRunner().invoke(app, ["monitor", "performance", *args])
    assert isinstance(result.exception, error)
