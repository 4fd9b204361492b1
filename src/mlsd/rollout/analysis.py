"""Canary analysis: what each arm of a rollout did during one interval, and the guardrails.

`CanaryAnalysis` is a pipeline observer (and failure observer) for one rollout: per arm it
counts requests and failures and keeps the interval's latencies, scores and decided
transactions in bounded buffers. `check()` closes the interval and judges the challenger
against the spec's guardrails: error rate, p99 latency, score distribution shift against the
champion (PSI above its limit, confirmed by a KS test whose p-value comes from re-assigning
whole customers between the arms, `mlsd.stats.grouped`) and, when a label source
knows the outcomes, the fraud catch rate against the champion's (one-sided Fisher test).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mlsd.inference.observers import Role, ScoredBatch, ScoringRequest
from mlsd.rollout.spec import Guardrails
from mlsd.stats.distance import psi
from mlsd.stats.grouped import grouped_ks

#: Per arm and interval: at most this many latencies, scores and decided transactions.
WINDOW = 20_000
#: Customers remembered per arm for the exposure count (the count saturates beyond it).
MAX_CUSTOMERS = 1_000_000


class LabelSource(Protocol):
    """Known outcomes of transactions (1 fraud, 0 genuine); unknown ones are left out."""

    def labels(self, transaction_ids: Sequence[int]) -> Mapping[int, int]:
        """The label of each transaction whose outcome is known."""
        ...


#: Distinct challenger customers an interval needs before its score shift is judged.
MIN_SHIFT_CUSTOMERS = 30
#: The level of the shift test, per check. A rollout runs a check every interval (a canary
#: of three steps, a dozen checks or more), so each check gets a strict level: an identical
#: copy is rolled back on a shift in about 1 % of rollouts at most.
SHIFT_ALPHA = 0.001


@dataclass
class ArmWindow:
    """What one arm did in the current interval (bounded buffers), and since the start."""

    requests: int = 0
    errors: int = 0
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    scores: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    #: The customer behind each of `scores` (the unit the shift test permutes).
    score_customers: deque[int] = field(default_factory=lambda: deque(maxlen=WINDOW))
    decided: deque[tuple[int, bool]] = field(default_factory=lambda: deque(maxlen=WINDOW))

    def add(self, batch: ScoredBatch) -> None:
        self.requests += 1
        self.latencies_s.append(batch.latency_s)
        self.scores.extend(batch.scores.tolist())
        for tx, decision in zip(batch.request.transactions, batch.decisions, strict=False):
            self.decided.append((tx.transaction_id, decision == "fraud"))
            self.score_customers.append(tx.customer_id)


@dataclass(frozen=True)
class CheckResult:
    """One analysis check: its figures, the guardrails broken, whether it decides anything."""

    figures: dict[str, Any]
    failures: tuple[str, ...]
    conclusive: bool

    @property
    def passed(self) -> bool:
        """Conclusive and no guardrail broken."""
        return self.conclusive and not self.failures

    def summary(self) -> str:
        """One line for the history and the alias move's reason."""
        f = self.figures
        if not self.conclusive:
            return f"inconclusive ({f['requests']} < {f['min_requests']} requests)"
        parts = [
            f"n={f['requests']}",
            f"errors {f['error_rate']:.2%}",
            f"p99 {f['p99_ms']:.1f} ms",
        ]
        if f.get("score_psi") is not None:
            parts.append(f"PSI {f['score_psi']:.3f} (KS {f['score_ks']:.3f})")
        if f.get("catch_rate") is not None:
            parts.append(f"catch {f['catch_rate']:.2f} vs {f['champion_catch_rate']:.2f}")
        verdict = "; ".join(self.failures) if self.failures else "passed"
        return f"{', '.join(parts)}: {verdict}"


class CanaryAnalysis:
    """Observes one rollout's arms and checks its challenger every interval."""

    def __init__(self, rollout_id: str, labels: LabelSource | None = None) -> None:
        self.rollout_id = rollout_id
        self.labels = labels
        self._prefix = f"{rollout_id}:"
        self._lock = threading.Lock()
        self._arms: dict[str, ArmWindow] = {}
        # the champion's last scores (from an interval with 50 or more) and their customers
        self._reference: tuple[np.ndarray, np.ndarray] | None = None
        self.exposed_requests = 0
        self.exposed_rows = 0
        self.exposed_customers: set[int] = set()
        self.total_requests = 0

    # -- observers ----------------------------------------------------------------------------

    def observe(self, batch: ScoredBatch) -> None:
        """Count a batch of this rollout's arms (others are ignored: a string prefix test)."""
        if not batch.variant.startswith(self._prefix) or batch.role != "primary":
            return
        arm = batch.variant[len(self._prefix) :]
        with self._lock:
            self.total_requests += 1
            self._arms.setdefault(arm, ArmWindow()).add(batch)
            if arm == "challenger":
                self.exposed_requests += 1
                self.exposed_rows += len(batch.scores)
                if len(self.exposed_customers) < MAX_CUSTOMERS:
                    self.exposed_customers.update(t.customer_id for t in batch.request.transactions)

    def failed(self, request: ScoringRequest, variant: str, role: Role, latency_s: float) -> None:
        """Count a failed call of one of this rollout's arms."""
        if not variant.startswith(self._prefix) or role != "primary":
            return
        arm = variant[len(self._prefix) :]
        with self._lock:
            window = self._arms.setdefault(arm, ArmWindow())
            window.requests += 1
            window.errors += 1
            window.latencies_s.append(latency_s)
            self.total_requests += 1
            if arm == "challenger":
                self.exposed_requests += 1
                self.exposed_customers.update(t.customer_id for t in request.transactions)

    # -- the check ----------------------------------------------------------------------------

    def check(self, guardrails: Guardrails) -> CheckResult:
        """Judge the challenger on the interval's requests and start a new interval — unless
        the interval had too few challenger requests to decide, which then runs on."""
        with self._lock:
            seen = self._arms.get("challenger", ArmWindow())
            if seen.requests < guardrails.min_requests and seen.errors < 3:
                return CheckResult(
                    {"requests": seen.requests, "min_requests": guardrails.min_requests},
                    (),
                    conclusive=False,
                )
            arms, self._arms = self._arms, {}
        champion = arms.get("champion", ArmWindow())
        challenger = arms.get("challenger", ArmWindow())
        if len(champion.scores) >= 50:
            self._reference = (
                np.fromiter(champion.scores, dtype=np.float64),
                np.fromiter(champion.score_customers, dtype=np.int64),
            )
        figures: dict[str, Any] = {
            "requests": challenger.requests,
            "champion_requests": champion.requests,
            "min_requests": guardrails.min_requests,
            "errors": challenger.errors,
            "error_rate": challenger.errors / challenger.requests if challenger.requests else 0.0,
            "p99_ms": _p99_ms(challenger.latencies_s),
            "champion_p99_ms": _p99_ms(champion.latencies_s),
            "score_psi": None,
            "score_ks": None,
            "catch_rate": None,
            "champion_catch_rate": None,
        }
        failures: list[str] = []
        if figures["error_rate"] > guardrails.max_error_rate:
            failures.append(
                f"error rate {figures['error_rate']:.2%} > {guardrails.max_error_rate:.2%}"
            )
        if figures["p99_ms"] > guardrails.max_p99_ms:
            failures.append(f"p99 {figures['p99_ms']:.1f} ms > {guardrails.max_p99_ms:g} ms")
        self._shift(challenger, figures, failures, guardrails)
        self._catch(champion, challenger, figures, failures, guardrails)
        # conclusive: enough requests, or 3+ errors (a verdict whatever the sample size)
        return CheckResult(figures, tuple(failures), conclusive=True)

    def _shift(
        self, challenger: ArmWindow, figures: dict[str, Any], failures: list[str], g: Guardrails
    ) -> None:
        # Routing is sticky by customer, so a challenger's scores come in clusters of one
        # customer's payments, and one customer's scores are alike: 36 scores of 14
        # customers are about 14 draws, not 36. Scipy's KS p-value, which assumes 36, rolled
        # an identical copy back in 2 of 4 small demos (PSI 1.1-1.3, p < 0.01). The p-value
        # here comes from re-assigning whole customers between the arms (`grouped_ks`), and
        # the shift is judged once the scores come from MIN_SHIFT_CUSTOMERS customers.
        distinct = len(set(challenger.score_customers))
        if self._reference is None or len(challenger.scores) < 20 or distinct < MIN_SHIFT_CUSTOMERS:
            return
        reference, reference_customers = self._reference
        current = np.fromiter(challenger.scores, dtype=np.float64)
        customers = np.fromiter(challenger.score_customers, dtype=np.int64)
        figures["score_psi"] = round(psi(reference, current), 4)
        ks = grouped_ks(reference, reference_customers, current, customers)
        figures["score_ks"] = round(ks.statistic, 4)
        figures["score_ks_p"] = float(f"{ks.pvalue:.3g}")
        # PSI alone over a few dozen scores is mostly noise (its expectation with nothing
        # changed is about bins/n: 0.25 at n=36 and 10 bins), so a shift fails a check only
        # when the customer-level test also finds the distributions different.
        if figures["score_psi"] > g.max_score_psi and ks.pvalue < SHIFT_ALPHA:
            failures.append(
                f"score PSI {figures['score_psi']:.3f} > {g.max_score_psi:g} "
                f"(KS p={figures['score_ks_p']:.2g} over {distinct} customers)"
            )

    def _catch(
        self,
        champion: ArmWindow,
        challenger: ArmWindow,
        figures: dict[str, Any],
        failures: list[str],
        g: Guardrails,
    ) -> None:
        if self.labels is None:
            return
        caught_a, frauds_a = _caught(self.labels, champion.decided)
        caught_b, frauds_b = _caught(self.labels, challenger.decided)
        if frauds_a < 5 or frauds_b < 5 or caught_a == 0:
            return
        from scipy.stats import fisher_exact

        figures["catch_rate"] = round(caught_b / frauds_b, 4)
        figures["champion_catch_rate"] = round(caught_a / frauds_a, 4)
        figures["frauds"] = frauds_b
        # H1: the challenger catches less than min_catch_ratio x the champion's rate. Shrink
        # the champion's catches to that ratio and test the challenger below it.
        expected = max(0, min(frauds_a, math.floor(g.min_catch_ratio * caught_a)))
        table = [[caught_b, frauds_b - caught_b], [expected, frauds_a - expected]]
        p_value = float(fisher_exact(table, alternative="less")[1])
        figures["catch_p_value"] = round(p_value, 4)
        if p_value < 0.05:
            failures.append(
                f"catch rate {figures['catch_rate']:.2f} < {g.min_catch_ratio:g} x "
                f"{figures['champion_catch_rate']:.2f} (p={p_value:.3f})"
            )


def _p99_ms(latencies: deque[float]) -> float:
    if not latencies:
        return 0.0
    return float(np.quantile(np.fromiter(latencies, dtype=np.float64), 0.99) * 1000.0)


def _caught(labels: LabelSource, decided: deque[tuple[int, bool]]) -> tuple[int, int]:
    known = labels.labels([tx for tx, _ in decided])
    frauds = [flagged for tx, flagged in decided if known.get(tx) == 1]
    return sum(frauds), len(frauds)
