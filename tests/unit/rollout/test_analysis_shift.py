"""The canary's score-shift guardrail: judged on enough customers, not on a few clustered."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from mlsd.rollout.analysis import MIN_SHIFT_CUSTOMERS, CanaryAnalysis
from mlsd.rollout.spec import Guardrails


def _batch(arm: str, score: float, customer: int, ident: int) -> Any:
    tx = SimpleNamespace(transaction_id=ident, customer_id=customer)
    return SimpleNamespace(
        variant=f"r1:{arm}", role="primary", scores=np.array([score]), decisions=["legit"],
        latency_s=0.001, request=SimpleNamespace(transactions=[tx]),
    )  # fmt: skip


def _check(challenger_customers: int) -> tuple[dict[str, Any], tuple[str, ...]]:
    """200 champion rows of 200 customers scoring 0-0.5; 60 challenger rows scoring 0.5-1
    from `challenger_customers` customers."""
    rng = np.random.default_rng(0)
    analysis = CanaryAnalysis("r1")
    for i in range(200):
        analysis.observe(_batch("champion", float(rng.uniform(0, 0.5)), i, i))
    for i in range(60):
        customer = 1_000 + i % challenger_customers
        analysis.observe(_batch("challenger", float(rng.uniform(0.5, 1)), customer, 500 + i))
    result = analysis.check(Guardrails())
    return result.figures, result.failures


def test_a_shifted_challenger_over_enough_customers_fails_the_check() -> None:
    figures, failures = _check(MIN_SHIFT_CUSTOMERS)
    assert figures["score_psi"] > 0.25
    assert any(f.startswith("score PSI") for f in failures), failures


def test_scores_of_a_few_customers_are_not_judged_for_a_shift() -> None:
    """Sticky routing sends each customer's payments to one arm: 60 scores of 10 customers
    are about 10 draws, too few for a distribution test to mean anything."""
    figures, failures = _check(10)
    assert figures["score_psi"] is None
    assert not failures


def _aa_check(seed: int) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Two arms of one model: 400 customers, each with its own score level and 1-6 payments,
    sticky-routed 10 % / 90 % by customer, as the demo's small world."""
    rng = np.random.default_rng(seed)
    analysis = CanaryAnalysis("r1")
    ident = 0
    for customer in range(400):
        level = float(rng.beta(0.5, 8.0))  # skewed, like fraud scores
        arm = "challenger" if customer % 10 == seed % 10 else "champion"
        for _ in range(int(rng.integers(1, 7))):
            score = min(max(level + float(rng.normal(0, 0.005)), 0.0), 1.0)
            analysis.observe(_batch(arm, score, customer, ident))
            ident += 1
    result = analysis.check(Guardrails(min_requests=20))
    return result.figures, result.failures


def test_an_identical_copy_is_not_rolled_back_on_clustered_scores() -> None:
    """A/A over 100 seeded checks: the customer-level test keeps its level (0.1 %)."""
    judged, alarms = 0, 0
    for seed in range(100):
        figures, failures = _aa_check(seed)
        if figures["score_psi"] is None:
            continue
        judged += 1
        alarms += any(f.startswith("score PSI") for f in failures)
    assert judged == 100
    assert alarms <= 1, f"{alarms} identical copies rolled back in {judged} checks"


def test_scipys_ks_over_clustered_scores_is_what_failed_the_demo() -> None:
    """The reason for the grouped test: the same A/A scores under scipy's independent-draws
    p-value reject "same distribution" in far more than 1 % of checks."""
    from scipy.stats import ks_2samp

    from mlsd.stats.distance import psi

    rejected = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        champion, challenger = [], []
        for customer in range(400):
            level = float(rng.beta(0.5, 8.0))
            arm = challenger if customer % 10 == seed % 10 else champion
            arm.extend(level + rng.normal(0, 0.005, size=int(rng.integers(1, 7))))
        if psi(champion, challenger) > 0.25 and ks_2samp(champion, challenger).pvalue < 0.01:
            rejected += 1
    assert rejected >= 5, rejected
