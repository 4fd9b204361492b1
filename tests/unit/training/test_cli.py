from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsd.cli.main import app, run
from mlsd.registry import Registry
from mlsd.settings import Settings


def test_train_reports_registers_and_promotes(home: Path, dataset_dir: Path) -> None:
    args = ["train", "--dataset", str(dataset_dir), "--folds", "1", "--quick", "--threads", "1"]
    result = CliRunner().invoke(app, [*args, "--promote"])
    assert result.exit_code == 0, result.output
    assert "registered models:/fraud/1" in result.output
    assert "promoted models:/fraud/1 to fraud@champion" in result.output
    assert "alert_budget k=100; validation card precision" in " ".join(result.output.split())
    pngs = list((home / "reports").glob("train-*-pr.png"))
    assert len(pngs) == 1
    registry = Registry.open(Settings(home=home))
    try:
        assert registry.aliases("fraud") == {"champion": 1}
        assert registry.resolve("fraud@champion").lineage.config["train"]["n_folds"] == 1
    finally:
        registry.close()
    # the registry's command replays the lineage through mlsd.training.reproduce
    replay = CliRunner().invoke(app, ["registry", "reproduce", "fraud/1"])
    assert replay.exit_code == 0, replay.output
    assert "predictions match" in replay.output
    again = CliRunner().invoke(app, [*args, "--model", "logistic", "--no-build", "--no-register"])
    assert again.exit_code == 0, again.output
    assert "registered" not in again.output


def test_train_with_the_expected_cost_policy(home: Path, dataset_dir: Path) -> None:
    args = ["train", "--dataset", str(dataset_dir), "--folds", "1", "--quick", "--threads", "1"]
    policy = ["--threshold-policy", "expected_cost", "--review-cost", "2.5", "--model", "logistic"]
    result = CliRunner().invoke(app, [*args, *policy])
    assert result.exit_code == 0, result.output
    assert "expected_cost 2.5 EUR/alert" in " ".join(result.output.split())
    registry = Registry.open(Settings(home=home))
    try:
        stored = registry.get("fraud", 1).threshold
    finally:
        registry.close()
    assert stored is not None
    assert (stored.policy, stored.parameter) == ("expected_cost", 2.5)
    shown = CliRunner().invoke(app, ["registry", "show", "fraud/1"])
    assert shown.exit_code == 0, shown.output
    assert f"{stored.value:.4g} (expected_cost 2.5 EUR/alert" in " ".join(shown.output.split())


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run `mlsd` in-process through `run()`, which maps errors to exit codes."""
    monkeypatch.setattr(sys, "argv", ["mlsd", *argv])
    with pytest.raises(SystemExit) as info:
        run()
    return int(info.value.code or 0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "xgboost"], "--model must be one of"),
        (["--train-start", "2018-13-01"], "is not a date"),
        (["--train-start", "2030-01-01"], "does not fit"),
        (["--select-by", "f1"], "--select-by must be one of"),
        (["--threshold-policy", "f1"], "--threshold-policy must be one of"),
        (["--alert-budget", "0"], "alert_budget: Input should be greater than or equal to 1"),
        (["--review-cost", "-1"], "review_cost: Input should be greater than or equal to 0"),
    ],
)
def test_bad_options_exit_with_a_message(
    home: Path,
    dataset_dir: Path,
    extra: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["train", "--dataset", str(dataset_dir), "--no-register", "--quick", "--folds", "1"]
    assert _run([*argv, *extra], monkeypatch) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_a_missing_dataset_is_not_found(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["train", "--dataset", str(tmp_path / "no")], monkeypatch) == 3
    assert "no dataset" in capsys.readouterr().err


def test_the_command_runs_as_a_process(home: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "mlsd.cli.main", "train", "--dataset", str(tmp_path / "no")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr


def test_a_refused_promotion_prints_the_failed_bounds_and_exits_8(
    home: Path, dataset_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsd.registry import PromotionGate

    monkeypatch.setattr(
        "mlsd.registry.gate.default_gate",
        lambda: PromotionGate(min_metrics={"auc_roc": 1.01}),
    )
    args = ["train", "--dataset", str(dataset_dir), "--folds", "1", "--quick", "--promote"]
    result = CliRunner().invoke(app, [*args, "--model", "logistic"])
    assert result.exit_code == 8, result.output
    text = " ".join(result.output.split())
    assert "registered models:/fraud/1" in text
    assert "not promoted" in text
    assert "must be at least 1.0100" in text  # the bound that failed


def test_train_help_mentions_quick() -> None:
    out = CliRunner().invoke(app, ["train", "--help"])
    assert out.exit_code == 0
    assert "--quick" in out.output
    assert "minutes" in " ".join(out.output.split())
