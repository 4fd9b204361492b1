"""`mlsd features ...` end to end on the embedded stores."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from mlsd.cli.main import app


def test_cli_flow(home: Path, dataset: Path, transactions: pd.DataFrame) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["features", "apply"])
    assert out.exit_code == 0, out.output
    assert "customer_spending" in out.output
    out = runner.invoke(app, ["features", "build", str(dataset)])
    assert out.exit_code == 0, out.output
    assert "rows" in out.output
    out = runner.invoke(app, ["features", "materialize"])
    assert out.exit_code == 0, out.output
    tx = transactions.iloc[-1]
    args = ["features", "get", "--customer", str(tx["CUSTOMER_ID"]), "--terminal"]
    args += [str(tx["TERMINAL_ID"]), "--amount", "12.5", "--at", tx["TX_DATETIME"].isoformat()]
    out = runner.invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert len(body["features"]) == 15
    assert body["features"][0] == {"feature": "TX_AMOUNT", "value": 12.5, "status": "present"}
    out = runner.invoke(app, ["features", "parity", "--checkpoints", "2", "--sample", "20"])
    assert out.exit_code == 0, out.output
    assert "100.00% agree" in out.output
    assert "online.sqlite" in out.output  # it says which store it checked


def test_cli_parity_and_materialize_after_a_dataset_switch(
    home: Path, dataset: Path, tmp_path: Path
) -> None:
    from mlsd.errors import IntegrityError
    from mlsd.features.testing import synthetic_transactions, write_transactions

    runner = CliRunner()
    for args in (["build", str(dataset)], ["materialize"], ["parity", "--sample", "20"]):
        out = runner.invoke(app, ["features", *args])
        assert out.exit_code == 0, out.output
    other = write_transactions(synthetic_transactions(days=30, seed=11), tmp_path / "other")
    assert runner.invoke(app, ["features", "build", str(other)]).exit_code == 0
    out = runner.invoke(app, ["features", "parity", "--sample", "20"])
    assert isinstance(out.exception, IntegrityError), out.output
    assert "materialized from" in out.output
    out = runner.invoke(app, ["features", "parity", "--replay", "--checkpoints", "1"])
    assert out.exit_code == 0, out.output  # the replay never looks at the served store
    assert "scratch" in out.output
    out = runner.invoke(app, ["features", "materialize", "--no-rebuild"])
    assert out.exception is not None
    assert out.exception.__class__.__name__ == "ConflictError"
    out = runner.invoke(app, ["features", "materialize"])
    assert out.exit_code == 0, out.output
    assert "rebuilt:" in out.output
    assert str(other.resolve()) in out.output.replace("\n", "")
    out = runner.invoke(app, ["features", "parity", "--sample", "20"])
    assert out.exit_code == 0, out.output


def test_cli_bad_time_is_an_error(home: Path) -> None:
    from mlsd.errors import ValidationError

    out = CliRunner().invoke(app, ["features", "materialize", "--end", "2024-01-01T00:00:00"])
    assert isinstance(out.exception, ValidationError)
    assert out.exception.field == "end"
