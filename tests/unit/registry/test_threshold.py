"""The decision threshold on a version: stored typed, shown by `registry show`, diffed."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import pydantic
import pytest
from typer.testing import CliRunner

from mlsd.cli.main import app
from mlsd.registry import DecisionThreshold, Registry, models
from mlsd.registry.diff import diff
from mlsd.registry.testing import register_sample
from mlsd.settings import Settings

BUDGET = DecisionThreshold(
    value=0.37,
    policy="alert_budget",
    parameter=100,
    validation={"card_precision": 0.62, "card_recall": 0.55, "cards_per_day": 94.4},
)


def test_docstring_example_runs() -> None:
    result = doctest.testmod(models)
    assert result.attempted > 0
    assert result.failed == 0


def test_describe_names_policy_parameter_and_validation() -> None:
    assert BUDGET.describe() == (
        "0.37 (alert_budget k=100; validation card precision 0.62, recall 0.55, 94 cards/day)"
    )
    cost = DecisionThreshold(
        value=0.0812, policy="expected_cost", parameter=5.0, validation={"net_gain_per_day": 812.4}
    )
    assert cost.describe() == "0.0812 (expected_cost 5 EUR/alert; validation net 812 EUR/day)"
    assert DecisionThreshold(value=0.5, policy="manual").describe() == "0.5 (manual)"


@pytest.mark.parametrize(
    "values",
    [
        {"value": math.nan, "policy": "manual"},
        {"value": math.inf, "policy": "manual"},
        {"value": 0.4, "policy": ""},
        {"value": 0.4, "policy": "manual", "validation": {"precision": math.nan}},
        {"value": 0.4, "policy": "manual", "extra": 1},
    ],
)
def test_bad_thresholds_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        DecisionThreshold.model_validate(values)


def test_show_and_json_carry_the_threshold(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    with Registry.open(Settings(home=home)) as registry:
        register_sample(registry, threshold=BUDGET)
        register_sample(registry)  # as registered before thresholds were stored
    cli = CliRunner()
    shown = cli.invoke(app, ["registry", "show", "fraud/1"])
    assert shown.exit_code == 0, shown.output
    assert "threshold" in shown.output
    assert BUDGET.describe() in shown.output
    legacy = cli.invoke(app, ["registry", "show", "fraud/2"])
    assert "none stored (registered before thresholds were): served at 0.5" in legacy.output
    record = json.loads(cli.invoke(app, ["registry", "show", "fraud/1", "--json"]).output)
    assert DecisionThreshold.model_validate(record["threshold"]) == BUDGET
    compared = cli.invoke(app, ["registry", "diff", "fraud/1", "fraud/2"])
    assert compared.exit_code == 0, compared.output
    assert "threshold" in compared.output


def test_diff_compares_thresholds(registry: Registry) -> None:
    a = register_sample(registry, threshold=BUDGET)
    b = register_sample(registry, threshold=BUDGET.model_copy(update={"value": 0.41}))
    out = diff(a, b)["threshold"]
    assert out["value"] == {"a": 0.37, "b": 0.41, "same": False}
    assert out["policy"]["same"]
    assert out["validation.cards_per_day"]["same"]
