"""The promotion gate: metric thresholds a candidate must meet to become champion.

Two kinds of check, per metric: an absolute floor (`min_metrics`) and a bound on
regression against the current champion (`max_regression`: the candidate may
fall at most this much below the champion). Metrics in `lower_is_better` (a
loss, say) are compared the other way round. A metric the candidate lacks fails;
one only the champion lacks cannot regress, so its check passes.

Regression is only measured on the same test data. The champion's recorded metrics
count when its lineage names the candidate's dataset and test period; otherwise the
caller passes the champion's metrics re-scored on the candidate's test rows
(`Rescored`, as `mlsd.training.pipeline.promote_result` does), or the gate refuses
with a `comparable` check saying why the two cannot be compared.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlsd.registry.models import ModelVersion

CheckKind = Literal["min", "regression", "comparable"]


def test_data(mv: ModelVersion) -> str:
    """The test data of a version, from its lineage: dataset hash and test days."""
    lineage = mv.lineage
    period = lineage.test_period
    days = f"{period[0]:%Y-%m-%d}..{period[1]:%Y-%m-%d}" if period else "unrecorded days"
    digest = lineage.dataset_hash[:12] or "unrecorded"
    return f"dataset {digest}, test days {days}"


def same_test_data(a: ModelVersion, b: ModelVersion) -> bool:
    """Whether two versions' test metrics were measured on the same rows (per lineage)."""
    return (a.lineage.dataset_hash, a.lineage.test_period) == (
        b.lineage.dataset_hash,
        b.lineage.test_period,
    )


class Rescored(BaseModel):
    """The champion's metrics measured on the candidate's test rows, or why they were not."""

    model_config = ConfigDict(frozen=True)

    metrics: dict[str, float] | None = None
    note: str = ""


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

    def evaluate(
        self,
        candidate: ModelVersion,
        champion: ModelVersion | None,
        rescored: Rescored | None = None,
    ) -> list[GateCheck]:
        """Every check of this gate on `candidate` against `champion` (None: no champion).

        `rescored` holds the champion's metrics on the candidate's test data, needed when
        their lineages name different test data.
        """
        checks = [self._floor(m, bound, candidate) for m, bound in self.min_metrics.items()]
        if champion is None or champion.version == candidate.version or not self.max_regression:
            return checks
        if rescored is not None and rescored.metrics is not None:
            reference, where = rescored.metrics, " on the candidate's test data"
        elif same_test_data(candidate, champion):
            reference, where = champion.metrics, ""
        else:
            checks.append(self._incomparable(candidate, champion, rescored))
            return checks
        for metric, tolerance in self.max_regression.items():
            checks.append(
                self._regression(metric, tolerance, candidate, champion, reference, where)
            )
        return checks

    def _incomparable(
        self, candidate: ModelVersion, champion: ModelVersion, rescored: Rescored | None
    ) -> GateCheck:
        detail = (
            f"champion v{champion.version} was tested on {test_data(champion)}, the candidate "
            f"on {test_data(candidate)}: their metrics do not compare; "
        )
        if rescored is not None:
            detail += (
                f"re-scoring the champion on the candidate's test data failed: {rescored.note}"
            )
        else:
            detail += "`mlsd train --promote` re-scores the champion on the candidate's test data"
        return GateCheck(
            metric="test data",
            kind="comparable",
            candidate=None,
            bound=None,
            passed=False,
            detail=detail,
        )

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
        self,
        metric: str,
        tolerance: float,
        candidate: ModelVersion,
        champion: ModelVersion,
        metrics: dict[str, float],
        where: str,
    ) -> GateCheck:
        value, reference = candidate.metrics.get(metric), metrics.get(metric)
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
            f"{metric} = {value:.4f} vs champion v{champion.version} {reference:.4f}{where} "
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
