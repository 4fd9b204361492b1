"""The canary controller: every analysis interval, step up, count a failure, roll back or
promote, each decision written to the rollout's history with the check's figures.

Only one process decides for a rollout (the holder of its lease in the registry database);
a decision is written with the number of checks it follows, so a process whose lease ran out
meanwhile gets a ConflictError instead of deciding twice. A rollback sets this process's
split to 0 % before it writes anything: the challenger stops answering at once here, and the
other servers follow within their poll interval.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from mlsd.errors import ConflictError
from mlsd.rollout.analysis import CanaryAnalysis, CheckResult
from mlsd.rollout.layers import SplitLayer
from mlsd.rollout.manage import Rollout, RolloutManager, event

log = logging.getLogger(__name__)

Decision = Literal["wait", "failed", "step", "promote", "rollback", "gone"]


class CanaryController:
    """Decides for one running canary from its analysis."""

    def __init__(
        self,
        manager: RolloutManager,
        rollout: Rollout,
        layer: SplitLayer,
        analysis: CanaryAnalysis,
        *,
        actor: str = "controller",
    ) -> None:
        self.manager = manager
        self.rollout = rollout
        self.layer = layer
        self.analysis = analysis
        self.actor = actor
        self.next_check = time.monotonic() + rollout.spec.interval_s
        self.last: CheckResult | None = None
        self.rolled_back_at: float | None = None

    @property
    def due(self) -> bool:
        """The analysis interval is over."""
        return time.monotonic() >= self.next_check

    def check(self) -> Decision:
        """Close the interval, judge it and act on it (see the module docstring)."""
        spec, record = self.rollout.spec, self.rollout.record
        self.next_check = time.monotonic() + spec.interval_s
        result = self.analysis.check(spec.guardrails)
        self.last = result
        figures = dict(result.figures)
        try:
            if not result.conclusive:  # the interval runs on: nothing to record yet
                return "wait"
            if result.failures:
                failed = record.failed_checks + 1
                if failed >= spec.max_failed_checks:
                    return self._rollback(result, figures, failed)
                return self._record("failed", result, figures, failed_checks=failed)
            if record.step + 1 < len(spec.steps):
                share = spec.steps[record.step + 1]
                decision = self._record("step", result, figures, step=record.step + 1, share=share)
                self.layer.set_share(share)
                return decision
            return self._promote(result)
        except ConflictError as exc:  # ended or checked elsewhere meanwhile
            log.info("canary %s: %s", record.id, exc.message)
            return "gone"

    def _record(self, decision: Decision, result: CheckResult, figures: dict[str, object],
                **changes: Any) -> Decision:  # fmt: skip
        record = self.rollout.record
        kind = "step" if decision == "step" else "check"
        shown = {k: changes.get(k, getattr(record, k)) for k in ("step", "share")}
        updated = self.manager.store.transition(
            record.id,
            event(record, kind, decision, self.actor, reason=result.summary(), figures=figures,
                  **shown),
            expect_checks=record.checks,
            checks=record.checks + 1,
            **changes,
        )  # fmt: skip
        self.rollout = Rollout(updated, self.rollout.spec)
        return decision

    def _rollback(self, result: CheckResult, figures: dict[str, object], failed: int) -> Decision:
        self.layer.set_share(0.0)  # first: the challenger stops answering here at once
        self.rolled_back_at = time.monotonic()
        spec = self.rollout.spec
        reason = (
            f"automatic: {failed} failed check(s) (limit {spec.max_failed_checks}): "
            f"{result.summary()}; back to {spec.endpoint}/{spec.champion}"
        )
        done = self.manager.rollback(
            self.rollout.record.id, actor=self.actor, reason=reason, figures=figures
        )
        self.rollout = done
        return "rollback"

    def _promote(self, result: CheckResult) -> Decision:
        steps = len(self.rollout.spec.steps)
        reason = f"automatic: all {steps} steps passed; last check {result.summary()}"
        self.rollout = self.manager.promote(self.rollout.record.id, actor=self.actor, reason=reason)
        return "promote"
