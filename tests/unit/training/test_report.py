from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from mlsd.training.pipeline import TrainResult
from mlsd.training.report import HANDBOOK_BASELINES, metrics_table, write_report


def test_report_writes_a_png_and_a_summary(trained: TrainResult, tmp_path: Path) -> None:
    paths = write_report(trained, tmp_path / "reports", "run")
    png = paths["pr_curve"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000
    data = json.loads(paths["summary"].read_text())
    assert data["primary"] == trained.primary
    assert data["split"] == trained.split.to_dict()
    assert data["n_test"] == len(trained.test)
    lightgbm = data["models"]["lightgbm"]
    assert lightgbm["test"] == trained.models["lightgbm"].metrics
    assert len(lightgbm["candidates"]) == 2


def test_table_lists_each_model_and_the_handbook(trained: TrainResult) -> None:
    table = metrics_table(trained)
    assert table.row_count == len(trained.models) + len(HANDBOOK_BASELINES)
    console = Console(width=160, record=True)
    console.print(table)
    text = console.export_text()
    auc = trained.models["logistic"].metrics["auc_roc"]
    assert f"{auc:.3f}" in text
    assert "0.871" in text
