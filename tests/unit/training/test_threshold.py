"""The decision threshold policies: the threshold each picks, checked against brute force."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

from mlsd.errors import ValidationError
from mlsd.training import threshold as module
from mlsd.training.threshold import (
    alert_budget,
    as_served,
    choose_threshold,
    expected_cost,
    operating_point,
)

START = pd.Timestamp("2018-08-08", tz="UTC")


def frame_and_scores(
    seed: int = 0, days: int = 5, cards: int = 80
) -> tuple[pd.DataFrame, np.ndarray]:
    """Random validation rows: ~3 transactions per card and day, frauds score higher."""
    rng = np.random.default_rng(seed)
    n = days * cards * 3
    fraud = (rng.random(n) < 0.05).astype(np.int8)
    frame = pd.DataFrame(
        {
            "CUSTOMER_ID": rng.integers(0, cards, n),
            "TX_FRAUD": fraud,
            "TX_AMOUNT": np.round(rng.gamma(2.0, 30.0, n), 2),
            "TX_DATETIME": START + pd.to_timedelta(rng.integers(0, days * 86_400, n), unit="s"),
        }
    )
    scores = np.clip(rng.beta(1.5, 8.0, n) + 0.4 * fraud * rng.random(n), 0, 1)
    return frame, as_served(scores)  # float32 as served: no rounding between here and there


def card_days(frame: pd.DataFrame, scores: np.ndarray) -> pd.Series:
    """The highest score of each (day, card)."""
    day = frame["TX_DATETIME"].dt.date
    return pd.Series(scores).groupby([day, frame["CUSTOMER_ID"]]).max()


def test_docstring_examples_run() -> None:
    result = doctest.testmod(module)
    assert result.attempted >= 10
    assert result.failed == 0


@pytest.mark.parametrize("k", [1, 5, 20, 60])
def test_alert_budget_is_the_lowest_threshold_within_k_cards_a_day(k: int) -> None:
    frame, scores = frame_and_scores(seed=k)
    choice = alert_budget(frame, scores, k)
    per_card = card_days(frame, scores)
    n_days = frame["TX_DATETIME"].dt.date.nunique()

    def mean_cards(t: float) -> float:
        return float((per_card >= t).sum()) / n_days

    # brute force: the lowest card score whose threshold keeps the mean within k
    within = sorted(t for t in per_card.unique() if mean_cards(t) <= k)
    assert mean_cards(choice.value) <= k
    assert choice.value == within[0]
    lower = per_card[per_card < choice.value]
    if len(lower):  # one more card score down would break the budget
        assert mean_cards(float(lower.max())) > k
    assert choice.validation["cards_per_day"] == pytest.approx(mean_cards(choice.value))
    assert (choice.policy, choice.parameter) == ("alert_budget", float(k))
    # an obviously wrong threshold fails these checks: 0.5 flags far fewer cards than allowed
    if k >= 20:
        assert mean_cards(0.5) < k
        assert choice.value < 0.5


def test_alert_budget_counts_cards_not_transactions_and_leaves_ties_out() -> None:
    day = pd.Timestamp("2018-08-08 09:00", tz="UTC")
    frame = pd.DataFrame(
        {
            "CUSTOMER_ID": [1, 1, 1, 2, 3],
            "TX_FRAUD": [1, 1, 1, 0, 0],
            "TX_AMOUNT": [10.0] * 5,
            "TX_DATETIME": [day] * 5,
        }
    )
    # card 1's three transactions are one alert: k=1 flags it at its top score 0.75
    assert alert_budget(frame, [0.75, 0.5, 0.25, 0.125, 0.0625], k=1).value == 0.75
    # cards 2 and 3 tie at 0.5: k=2 cannot take both, so only card 1 is flagged
    choice = alert_budget(frame, [0.75, 0.5, 0.25, 0.5, 0.5], k=2)
    assert choice.value == 0.75
    assert choice.validation["cards_per_day"] == 1.0


@pytest.mark.parametrize("cost", [0.0, 2.0, 5.0, 40.0])
def test_expected_cost_maximises_fraud_euros_minus_review_cost(cost: float) -> None:
    frame, scores = frame_and_scores(seed=int(cost))
    choice = expected_cost(frame, scores, cost)
    fraud = frame["TX_FRAUD"].to_numpy() == 1
    amount = frame["TX_AMOUNT"].to_numpy()

    def net(t: float) -> float:
        flagged = scores >= t
        return float(amount[flagged & fraud].sum() - cost * flagged.sum())

    best = max([0.0, *(net(t) for t in np.unique(scores))])
    assert net(choice.value) == pytest.approx(best, abs=1e-6)
    days = choice.validation["days"]
    assert choice.validation["net_gain_per_day"] == pytest.approx(best / days, abs=1e-6)
    assert net(0.5) < best  # the old fixed threshold leaves money on the table
    assert (choice.policy, choice.parameter) == ("expected_cost", cost)


def test_expected_cost_flags_nothing_when_no_alert_pays() -> None:
    frame, scores = frame_and_scores()
    choice = expected_cost(frame, scores, review_cost=1e9)
    assert choice.value > scores.max()
    assert choice.validation["alerts_per_day"] == 0.0
    assert choice.validation["precision"] == 0.0


def test_thresholds_are_float32_so_every_comparison_agrees() -> None:
    frame, rounded = frame_and_scores()
    trained = rounded + 1e-9  # float64 scores from training, between float32 values
    served = trained.astype(np.float32)  # what ONNX answers in serving
    for choice in (alert_budget(frame, trained, 10), expected_cost(frame, trained, 5.0)):
        assert float(np.float32(choice.value)) == choice.value
        in_numpy = served >= choice.value  # compared in float32
        in_python = [s >= choice.value for s in served.tolist()]  # compared in float64
        assert in_numpy.tolist() == in_python
        assert choice == (
            alert_budget(frame, served, 10)
            if choice.policy == "alert_budget"
            else expected_cost(frame, served, 5.0)
        )


def test_operating_point_figures() -> None:
    frame, scores = frame_and_scores()
    point = operating_point(frame, scores, 0.3)
    flagged, fraud = scores >= 0.3, frame["TX_FRAUD"].to_numpy() == 1
    assert point["precision"] == pytest.approx((flagged & fraud).sum() / flagged.sum())
    assert point["recall"] == pytest.approx((flagged & fraud).sum() / fraud.sum())
    assert point["days"] == 5.0
    assert point["alerts_per_day"] == pytest.approx(flagged.sum() / 5)
    assert point["max_cards_per_day"] >= point["cards_per_day"]


def test_choose_threshold_dispatches_by_policy_name() -> None:
    frame, scores = frame_and_scores()
    assert choose_threshold("alert_budget", frame, scores, alert_budget_k=7) == alert_budget(
        frame, scores, 7
    )
    assert choose_threshold("expected_cost", frame, scores, review_cost=3.0) == expected_cost(
        frame, scores, 3.0
    )


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda f, s: choose_threshold("f1", f, s), "threshold_policy"),
        (lambda f, s: alert_budget(f, s, 0), "alert_budget"),
        (lambda f, s: alert_budget(f, s, 2.5), "alert_budget"),  # type: ignore[arg-type]
        (lambda f, s: expected_cost(f, s, -1.0), "review_cost"),
        (lambda f, s: expected_cost(f, s, float("nan")), "review_cost"),
        (lambda f, s: alert_budget(f, s[:-1]), "scores"),
        (lambda f, s: alert_budget(f, np.where(s > 0.5, np.nan, s)), "scores"),
        (lambda f, s: expected_cost(f.drop(columns="TX_AMOUNT"), s), "TX_AMOUNT"),
        (lambda f, s: alert_budget(f.iloc[:0], s[:0]), "scores"),
    ],
)
def test_bad_input_names_the_field(call: object, field: str) -> None:
    frame, scores = frame_and_scores()
    with pytest.raises(ValidationError) as caught:
        call(frame, scores)  # type: ignore[operator]
    assert caught.value.field == field
