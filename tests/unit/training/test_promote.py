"""`promote_result`: the champion is compared with the candidate on the same test rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlsd.errors import GateRejectedError
from mlsd.registry import PromotionGate, Registry
from mlsd.registry.gate import default_gate
from mlsd.settings import Settings
from mlsd.training.pipeline import TrainResult, promote_result, register_result


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    opened = Registry.open(Settings(home=tmp_path / "home"))
    yield opened
    opened.close()


def _inflated(result: TrainResult, dataset_hash: str) -> TrainResult:
    """`result` as if tested on another dataset where it scored near perfectly."""
    primary = result.models[result.primary]
    metrics = {k: min(0.999, v + 0.3) for k, v in primary.metrics.items()}
    models = {**result.models, result.primary: dataclasses.replace(primary, metrics=metrics)}
    return dataclasses.replace(result, models=models, dataset_hash=dataset_hash)


def test_the_champion_is_rescored_on_the_candidates_test_rows(
    registry: Registry, trained: TrainResult
) -> None:
    """The trap: a champion tested on another dataset refused the candidate with metrics
    from rows the candidate never saw."""
    champion = register_result(registry, _inflated(trained, "another-dataset"), "fraud")
    registry.set_alias("fraud", "champion", champion.version, reason="t", actor="t")
    candidate = register_result(registry, trained, "fraud")
    gate = default_gate()
    with pytest.raises(GateRejectedError):  # by the recorded (other data) metrics
        registry.promote("fraud", candidate.version, gate=gate, actor="t", reason="t")
    decision = promote_result(registry, trained, candidate, gate=gate, actor="t", reason="t")
    assert decision.accepted
    regression = [c for c in decision.checks if c.kind == "regression"]
    assert len(regression) == 3
    assert all("on the candidate's test data" in c.detail for c in regression)
    assert registry.aliases("fraud")["champion"] == candidate.version


def test_a_champion_that_cannot_be_rescored_is_a_stated_refusal(
    registry: Registry, trained: TrainResult
) -> None:
    other = dataclasses.replace(
        trained, dataset_hash="another-dataset", feature_views={"customer_spending": "old"}
    )
    champion = register_result(registry, other, "fraud")
    registry.set_alias("fraud", "champion", champion.version, reason="t", actor="t")
    candidate = register_result(registry, trained, "fraud")
    gate = PromotionGate(max_regression={"auc_roc": 0.0})
    with pytest.raises(GateRejectedError, match="feature views") as info:
        promote_result(registry, trained, candidate, gate=gate, actor="t", reason="t")
    assert "do not compare" in info.value.message
    assert registry.aliases("fraud")["champion"] == champion.version
