from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError as PydanticValidationError

from mlsd.registry import ModelVersion, PromotionGate
from mlsd.registry.environment import current_environment
from mlsd.registry.gate import default_gate
from mlsd.registry.testing import sample_lineage, sample_signature


def version(n: int, **metrics: float) -> ModelVersion:
    return ModelVersion(
        name="m",
        version=n,
        created_at=datetime.now(UTC),
        flavor="lightgbm",
        artifacts={},
        signature=sample_signature(),
        lineage=sample_lineage(),
        metrics=metrics,
        environment=current_environment(),
    )


def test_floor_checks_absolute_values() -> None:
    gate = PromotionGate(min_metrics={"auc_roc": 0.8})
    assert [c.passed for c in gate.evaluate(version(1, auc_roc=0.85), None)] == [True]
    [check] = gate.evaluate(version(1, auc_roc=0.75), None)
    assert not check.passed
    assert check.bound == 0.8


def test_regression_is_measured_against_the_champion() -> None:
    gate = PromotionGate(max_regression={"average_precision": 0.01})
    champion = version(1, average_precision=0.60)
    assert gate.evaluate(version(2, average_precision=0.595), champion)[0].passed
    [check] = gate.evaluate(version(2, average_precision=0.58), champion)
    assert not check.passed
    assert check.bound == pytest.approx(0.59)


def test_no_champion_means_no_regression_check() -> None:
    gate = PromotionGate(max_regression={"auc_roc": 0.0})
    assert gate.evaluate(version(1, auc_roc=0.1), None) == []


def test_missing_metrics_fail() -> None:
    gate = PromotionGate(min_metrics={"auc_roc": 0.5}, max_regression={"ap": 0.0})
    checks = gate.evaluate(version(2), version(1, ap=0.5))
    assert [c.passed for c in checks] == [False, False]


def test_a_metric_the_champion_lacks_cannot_regress() -> None:
    gate = PromotionGate(max_regression={"ap": 0.0})
    [check] = gate.evaluate(version(2, ap=0.1), version(1))
    assert check.passed
    assert "nothing to regress from" in check.detail


def test_lower_is_better_metrics_compare_the_other_way() -> None:
    gate = PromotionGate(
        min_metrics={"log_loss": 0.3},
        max_regression={"log_loss": 0.01},
        lower_is_better=frozenset({"log_loss"}),
    )
    checks = gate.evaluate(version(2, log_loss=0.25), version(1, log_loss=0.245))
    assert all(c.passed for c in checks)
    checks = gate.evaluate(version(2, log_loss=0.29), version(1, log_loss=0.245))
    assert [c.passed for c in checks] == [True, False]


def test_negative_tolerance_is_refused() -> None:
    with pytest.raises(PydanticValidationError):
        PromotionGate(max_regression={"auc_roc": -0.1})


def test_default_gate_uses_the_training_metric_names() -> None:
    assert set(default_gate().max_regression) == {
        "auc_roc",
        "average_precision",
        "card_precision_at_100",
    }
