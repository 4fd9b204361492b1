"""`mlsd registry ...` end to end on the embedded backends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsd.cli.main import app
from mlsd.errors import GateRejectedError, NotFoundError, ValidationError
from mlsd.registry import Registry
from mlsd.registry.testing import register_sample
from mlsd.settings import Settings


@pytest.fixture
def cli(home: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "250")
    with Registry.open(Settings(home=home)) as registry:
        for seed, (auc, ap) in enumerate([(0.90, 0.60), (0.91, 0.62), (0.70, 0.20)]):
            metrics = {"auc_roc": auc, "average_precision": ap, "card_precision_at_100": ap / 2}
            register_sample(registry, metrics=metrics, seed=seed)
    return CliRunner()


def run(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, ["registry", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def test_list_show_and_json(cli: CliRunner) -> None:
    assert "fraud" in run(cli, "list")
    listing = run(cli, "list", "fraud")
    assert "fraud/3 " in listing
    assert "0.910" in listing
    shown = run(cli, "show", "models:/fraud/2")
    assert "transaction_features@1" in shown
    assert "matches this environment" in shown
    assert "models:/fraud/2" in run(cli, "show", "--uri", "models:/fraud/2")
    with pytest.raises(ValidationError):
        run(cli, "show")
    record = json.loads(run(cli, "show", "fraud/2", "--json"))
    assert record["version"] == 2
    assert "numpy==" in run(cli, "show", "fraud/2", "--requirements")
    assert "1 artifacts verified" in run(cli, "show", "fraud/1", "--verify")


def test_alias_promote_rollback_history(cli: CliRunner) -> None:
    run(cli, "alias", "fraud", "champion", "1", "--reason", "first", "--actor", "ana")
    out = run(cli, "promote", "fraud/2", "--reason", "better", "--actor", "ci")
    assert "accepted" in out
    with pytest.raises(GateRejectedError):
        run(cli, "promote", "fraud/3", "--max-regression", "auc_roc=0.01")
    assert "forced" in run(cli, "promote", "fraud/3", "--min", "auc_roc=0.8", "--force")
    out = run(cli, "rollback", "fraud", "champion", "--reason", "bad canary")
    assert "3 -> 2" in out
    history = run(cli, "history", "fraud", "--alias", "champion", "--decisions")
    for word in ("first", "better", "bad canary", "rollback", "refused", "forced"):
        assert word in history
    assert "@champion" in run(cli, "list", "fraud")


def test_tags_and_tag_search(cli: CliRunner) -> None:
    assert "release=v3.2-prod" in run(cli, "tag", "fraud/2", "release=v3.2-prod", "team=risk")
    listing = run(cli, "list", "--tag", "release=v3.2-prod")
    assert "fraud/2" in listing
    assert "fraud/1" not in listing
    assert "release=v3.2-prod" in run(cli, "tag", "fraud/2", "--remove", "team")
    with pytest.raises(ValidationError):
        run(cli, "tag", "fraud/2", "no-equals-sign")


def test_diff_side_by_side(cli: CliRunner) -> None:
    out = run(cli, "diff", "fraud/1", "fraud/3")
    assert "auc_roc" in out
    assert "seed" in out
    result = json.loads(run(cli, "diff", "fraud/1", "fraud/3", "--json"))
    assert result["metrics"]["auc_roc"]["b"] == 0.7


def test_errors_are_mlsd_errors(cli: CliRunner) -> None:
    with pytest.raises(NotFoundError):
        run(cli, "show", "fraud/9")
    with pytest.raises(ValidationError):
        run(cli, "show", "../etc/1")
    with pytest.raises(ValidationError):
        run(cli, "alias", "fraud", "champion")
    with pytest.raises(NotFoundError):
        run(cli, "reproduce", "fraud/9")


def test_missing_version_exits_with_the_not_found_code(cli: CliRunner, home: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlsd.cli.main", "registry", "show", "fraud/42"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == NotFoundError.exit_code
    assert "no version 42" in proc.stderr
