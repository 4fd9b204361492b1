"""Retraining-trigger events: a rule, and the evidence that made it fire, as data.

Monitoring decides that a version should be retrained; continuous learning acts on it.
Between them is a `RetrainTrigger` per rule that fired on a window: which metric, of
which version and variant, over which window, its value, the threshold, the label
coverage it was computed on. `write_jsonl` appends them one JSON object a line, the file
a retraining job tails.

A rule reads one metric of `WindowPerformance` and fires when it is `below` (or `above`)
its threshold, or when it dropped by more than `max_drop` from the version's reference
value of that metric (the registered test AUC / AP, the validation recall; the estimated
AUC with the estimate of the reference's own scores, else the reference AUC). Windows
with too few labels (`min_coverage`, `min_frauds`) never fire a label-based rule: a
week-old window with 5 % of its labels is noise, not evidence.

>>> rule = TriggerRule("auc_drop", "auc", max_drop=0.05)
>>> rule.describe()
'auc more than 0.05 below the reference'
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from mlsd.errors import ValidationError
from mlsd.monitoring.performance import WindowPerformance

Metric = Literal[
    "auc", "average_precision", "card_precision", "block_precision", "recall",
    "estimated_auc", "estimate_error", "label_coverage",
]  # fmt: skip
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]
LABEL_BASED = {
    "auc", "average_precision", "card_precision", "block_precision", "recall", "estimate_error",
}  # fmt: skip


@dataclass(frozen=True)
class TriggerRule:
    """Fire when `metric` is below / above a threshold, or `max_drop` under the reference."""

    name: str
    metric: str
    below: float | None = None
    above: float | None = None
    max_drop: float | None = None
    min_coverage: float = 0.5
    min_frauds: int = 5

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValidationError(
                f"rule {self.name!r}: unknown metric {self.metric!r}; use one of {METRICS}",
                field="metric",
            )
        limits = [v for v in (self.below, self.above, self.max_drop) if v is not None]
        if len(limits) != 1 or not all(math.isfinite(v) for v in limits):
            raise ValidationError(
                f"rule {self.name!r}: give exactly one finite threshold (below, above or max_drop)",
                field="threshold",
            )

    def describe(self) -> str:
        """The rule in words."""
        if self.max_drop is not None:
            return f"{self.metric} more than {self.max_drop:g} below the reference"
        if self.below is not None:
            return f"{self.metric} below {self.below:g}"
        return f"{self.metric} above {self.above:g}"


#: What `mlsd monitor performance --triggers` applies unless given rules.
DEFAULT_RULES: tuple[TriggerRule, ...] = (
    TriggerRule("auc_drop", "auc", max_drop=0.05),
    TriggerRule(
        "estimated_auc_drop", "estimated_auc", max_drop=0.05, min_coverage=0.0, min_frauds=0
    ),
    # the estimate wrong by 0.1 AUC on 30+ frauds: P(fraud | score) moved, concept drift
    TriggerRule("estimate_off", "estimate_error", above=0.1, min_frauds=30),
)


@dataclass(frozen=True)
class RetrainTrigger:
    """One rule firing on one window: the event continuous learning reads."""

    rule: str
    description: str
    model: str
    version: int
    variant: str
    metric: str
    value: float
    threshold: float
    window_start: datetime
    window_end: datetime
    as_of: datetime
    label_coverage: float
    n_predictions: int
    n_labelled: int
    frauds: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (times as ISO strings)."""
        out = asdict(self)
        for key in ("window_start", "window_end", "as_of"):
            out[key] = getattr(self, key).isoformat()
        return out


def _value(result: WindowPerformance, metric: str) -> float | None:
    if metric == "estimated_auc":
        return result.estimated_auc
    if metric == "estimate_error":
        error = result.estimate_error
        return None if error is None else abs(error)
    value: float | None = getattr(result, metric)
    return value


def check(rule: TriggerRule, result: WindowPerformance) -> RetrainTrigger | None:
    """The event if `rule` fires on `result`, else None (also when the metric is absent)."""
    if rule.metric in LABEL_BASED and (
        result.label_coverage < rule.min_coverage or result.frauds < rule.min_frauds
    ):
        return None
    value = _value(result, rule.metric)
    if value is None:
        return None
    if rule.max_drop is not None:
        base = result.reference.get(rule.metric)
        if base is None and rule.metric == "estimated_auc":  # no estimate of the reference
            base = result.reference.get("auc")
        if base is None:
            return None
        threshold = base - rule.max_drop
        fired = value < threshold
    elif rule.below is not None:
        threshold, fired = rule.below, value < rule.below
    else:
        threshold = float(rule.above) if rule.above is not None else math.inf
        fired = value > threshold
    if not fired:
        return None
    return RetrainTrigger(
        rule=rule.name, description=rule.describe(), model=result.model,
        version=result.version, variant=result.variant, metric=rule.metric, value=value,
        threshold=threshold, window_start=result.start, window_end=result.end,
        as_of=result.as_of, label_coverage=result.label_coverage,
        n_predictions=result.n_predictions, n_labelled=result.n_labelled, frauds=result.frauds,
    )  # fmt: skip


def evaluate_triggers(
    results: Iterable[WindowPerformance], rules: Sequence[TriggerRule] = DEFAULT_RULES
) -> list[RetrainTrigger]:
    """Every (rule, window) that fires, in window order."""
    return [t for r in results for rule in rules if (t := check(rule, r)) is not None]


def write_jsonl(triggers: Iterable[RetrainTrigger], path: Path) -> int:
    """Append the events to `path`, one JSON object a line; returns how many."""
    lines = [json.dumps(t.to_dict(), separators=(",", ":")) for t in triggers]
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
    return len(lines)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The events of a JSON-lines file, as dicts (what a retraining job reads)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
