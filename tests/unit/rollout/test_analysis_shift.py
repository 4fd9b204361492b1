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
