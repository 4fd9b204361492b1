"""The promotion gate: metric thresholds a candidate must meet to become champion.

Two kinds of check, per metric: an absolute floor (`min_metrics`) and a bound on
regression against the current champion (`max_regression`: the candidate may
fall at most this much below the champion). Metrics in `lower_is_better` (a
loss, say) are compared the other way round. A metric the candidate lacks fails;
one only the champion lacks cannot regress, so its check passes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlsd.registry.models import ModelVersion

CheckKind = Literal["min", "regression"]


class GateCheck(BaseModel):
    """One threshold tested: the candidate's value, the bound it had to meet, the outcome."""

    model_config = ConfigDict(frozen=True)

    metric: str
    kind: CheckKind
    candidate: float | None
    bound: float | None
    passed: bool
    detail: str


class PromotionGate(BaseModel):
    """Thresholds for promotion. An empty gate accepts every candidate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_metrics: dict[str, float] = Field(default_factory=dict)
    max_regression: dict[str, float] = Field(default_factory=dict)
    lower_is_better: frozenset[str] = frozenset()

    @field_validator("max_regression")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if v < 0]
        if bad:
            raise ValueError(f"max_regression must be >= 0 (got {bad})")
        return value

    def evaluate(self, candidate: ModelVersion, champion: ModelVersion | None) -> list[GateCheck]:
        """Every check of this gate on `candidate` against `champion` (None: no champion)."""
        checks = [self._floor(m, bound, candidate) for m, bound in self.min_metrics.items()]
        if champion is not None and champion.version != candidate.version:
            for metric, tolerance in self.max_regression.items():
                checks.append(self._regression(metric, tolerance, candidate, champion))
        return checks

    def _better_or_equal(self, metric: str, value: float, bound: float) -> bool:
        return value <= bound if metric in self.lower_is_better else value >= bound

    def _floor(self, metric: str, bound: float, candidate: ModelVersion) -> GateCheck:
        value = candidate.metrics.get(metric)
        word = "at most" if metric in self.lower_is_better else "at least"
        if value is None:
            return GateCheck(
                metric=metric,
                kind="min",
                candidate=None,
                bound=bound,
                passed=False,
                detail=f"candidate has no {metric!r} metric",
            )
        passed = self._better_or_equal(metric, value, bound)
        detail = f"{metric} = {value:.4f}, must be {word} {bound:.4f}"
        return GateCheck(
            metric=metric, kind="min", candidate=value, bound=bound, passed=passed, detail=detail
        )

    def _regression(
        self, metric: str, tolerance: float, candidate: ModelVersion, champion: ModelVersion
    ) -> GateCheck:
        value, reference = candidate.metrics.get(metric), champion.metrics.get(metric)
        if value is None:
            return GateCheck(
                metric=metric,
                kind="regression",
                candidate=None,
                bound=None,
                passed=False,
                detail=f"candidate has no {metric!r} metric",
            )
        if reference is None:
            return GateCheck(
                metric=metric,
                kind="regression",
                candidate=value,
                bound=None,
                passed=True,
                detail=f"champion v{champion.version} has no {metric!r}: nothing to regress from",
            )
        lower = metric in self.lower_is_better
        bound = reference + tolerance if lower else reference - tolerance
        passed = self._better_or_equal(metric, value, bound)
        detail = (
            f"{metric} = {value:.4f} vs champion v{champion.version} {reference:.4f} "
            f"(tolerance {tolerance:.4f}, bound {bound:.4f})"
        )
        return GateCheck(
            metric=metric,
            kind="regression",
            candidate=value,
            bound=bound,
            passed=passed,
            detail=detail,
        )


class GateDecision(BaseModel):
    """A recorded promotion decision: what was checked, the outcome, who asked and why."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    alias: str
    champion_version: int | None
    accepted: bool
    forced: bool
    checks: list[GateCheck]
    gate: PromotionGate
    at: datetime
    actor: str
    reason: str

    @property
    def failures(self) -> list[GateCheck]:
        """The checks that did not pass."""
        return [c for c in self.checks if not c.passed]


def default_gate() -> PromotionGate:
    """The one champion gate of mlsd (`mlsd registry promote`, `mlsd train --promote`, the demo).

    The candidate must beat chance (AUC ROC >= 0.5) and may not fall below the champion
    by more than 0.005 AUC ROC, 0.01 average precision or 0.01 Card Precision@100 (the
    training package's metric names).
    """
    return PromotionGate(
        min_metrics={"auc_roc": 0.5},
        max_regression={"auc_roc": 0.005, "average_precision": 0.01, "card_precision_at_100": 0.01},
    )
