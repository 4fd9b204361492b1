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


def _tested_on(mv: ModelVersion, dataset_hash: str, day: int) -> ModelVersion:
    start = datetime(2018, 8, day, tzinfo=UTC)
    lineage = mv.lineage.model_copy(
        update={"dataset_hash": dataset_hash, "test_period": (start, start.replace(day=day + 7))}
    )
    return mv.model_copy(update={"lineage": lineage})


def test_metrics_of_different_test_data_are_not_compared() -> None:
    """The trap: a champion tested on another dataset refused (or let through) a
    candidate by metrics measured on other rows."""
    from mlsd.registry.gate import Rescored

    gate = PromotionGate(max_regression={"average_precision": 0.01})
    champion = _tested_on(version(1, average_precision=0.90), "aaaa", 1)
    candidate = _tested_on(version(2, average_precision=0.60), "bbbb", 8)
    [check] = gate.evaluate(candidate, champion)
    assert check.kind == "comparable"
    assert not check.passed
    assert "aaaa" in check.detail
    assert "bbbb" in check.detail
    assert "2018-08-08..2018-08-15" in check.detail
    rescored = Rescored(metrics={"average_precision": 0.58})  # the champion on the new rows
    [check] = gate.evaluate(candidate, champion, rescored)
    assert check.passed
    assert check.bound == pytest.approx(0.57)
    assert "on the candidate's test data" in check.detail
    [check] = gate.evaluate(candidate, champion, Rescored(note="feature views differ"))
    assert not check.passed
    assert "feature views differ" in check.detail


def test_the_same_test_data_compares_recorded_metrics() -> None:
    gate = PromotionGate(max_regression={"average_precision": 0.01})
    champion = _tested_on(version(1, average_precision=0.60), "aaaa", 1)
    [check] = gate.evaluate(_tested_on(version(2, average_precision=0.58), "aaaa", 1), champion)
    assert check.kind == "regression"
    assert not check.passed
