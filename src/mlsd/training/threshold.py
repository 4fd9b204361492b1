"""The decision threshold: chosen on the validation folds by a named policy, never on test days.

A model scores; serving decides `fraud` where the score reaches the threshold. Which
threshold is an operating decision, so it is chosen at training, on the prequential
validation folds (the days `selection` already uses), by one of two policies:

- `alert_budget` (default, parameter k = 100): investigators review at most k cards a day,
  the operating point of Card Precision@k. The threshold is the lowest score such that the
  number of cards flagged per validation day (a card is flagged on a day when one of its
  transactions scores at or above the threshold) is at most k ON AVERAGE over the
  validation days. The mean, not every single day: a budget is planned over weeks, and a
  per-day maximum would let the busiest validation day set the threshold for all others
  (the maximum is recorded too, as `max_cards_per_day`). Lowest such score: within the
  budget, as many frauds as possible are caught.
- `expected_cost` (parameter: the review cost of one alert, in euros): every transaction
  scoring at or above the threshold is an alert that costs the review cost; a fraudulent
  one saves its amount. The threshold maximises the fraud amount caught minus the review
  cost of all alerts on the validation days (the highest such score on ties).

When no threshold does better than flagging nothing (for instance every alert costs more
than any fraud is worth), the threshold sits just above the highest validation score.
Scores are rounded to float32 first (`as_served`): served scores are float32 (ONNX), and
numpy compares a float32 array with a Python float in float32 while a Python loop compares
in float64. At a float32 threshold both decide alike, as on the validation days.
`operating_point` measures any threshold the same way; its figures are recorded with the
choice: precision and recall of transactions and of cards (per day, as Card Precision
counts them; 0.0 when nothing is flagged), alerts and cards flagged per day, and the share
of the fraud amount caught.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from mlsd.data import schema
from mlsd.errors import ValidationError
from mlsd.training.protocol import DAY, with_day

ThresholdPolicy = Literal["alert_budget", "expected_cost"]
POLICIES: tuple[ThresholdPolicy, ...] = get_args(ThresholdPolicy)
DEFAULT_ALERT_BUDGET = 100
DEFAULT_REVIEW_COST = 5.0


@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold, the policy and parameter that chose it, its validation figures."""

    value: float
    policy: ThresholdPolicy
    parameter: float
    validation: dict[str, float] = field(default_factory=dict)


def _checked(frame: pd.DataFrame, scores: ArrayLike) -> tuple[pd.DataFrame, NDArray[np.float64]]:
    for column in (schema.CUSTOMER_ID, schema.TX_FRAUD, schema.TX_AMOUNT):
        if column not in frame.columns:
            raise ValidationError(f"the frame has no {column} column", field=column)
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != (len(frame),):
        raise ValidationError("one score per row is required", field="scores")
    if len(frame) == 0:
        raise ValidationError("a threshold needs validation rows", field="scores")
    if not np.all(np.isfinite(values)):
        raise ValidationError("scores must be finite", field="scores")
    return with_day(frame), as_served(values)


def as_served(scores: ArrayLike) -> NDArray[np.float64]:
    """`scores` at the precision serving produces them: float32, held in float64.

    >>> float(as_served([0.1])[0]) == float(np.float32(0.1)), float(as_served([0.5])[0])
    (True, 0.5)
    """
    return np.asarray(scores, dtype=np.float32).astype(np.float64)


def _cards(frame: pd.DataFrame, values: NDArray[np.float64]) -> pd.DataFrame:
    """One row per (day, card): its highest score and whether any transaction was a fraud."""
    rows = pd.DataFrame(
        {
            DAY: frame[DAY].to_numpy(),
            "card": frame[schema.CUSTOMER_ID].to_numpy(),
            "fraud": frame[schema.TX_FRAUD].to_numpy(),
            "score": values,
        }
    )
    return rows.groupby([DAY, "card"], sort=True).max().reset_index()


def _ratio(num: ArrayLike, den: ArrayLike) -> float:
    """num / den, 0.0 when den is 0 (nothing flagged, or nothing to find)."""
    top, bottom = float(np.asarray(num)), float(np.asarray(den))
    return top / bottom if bottom > 0 else 0.0


def operating_point(frame: pd.DataFrame, scores: ArrayLike, threshold: float) -> dict[str, float]:
    """What deciding `fraud` at `score >= threshold` does on `frame`'s days.

    >>> import pandas as pd
    >>> t = pd.Timestamp("2018-08-08 10:00", tz="UTC")
    >>> f = pd.DataFrame({"CUSTOMER_ID": [1, 1, 2, 3], "TX_FRAUD": [0, 1, 0, 1],
    ...                   "TX_AMOUNT": [10.0, 90.0, 20.0, 30.0], "TX_DATETIME": [t] * 4})
    >>> point = operating_point(f, [0.1, 0.8, 0.6, 0.3], 0.5)
    >>> point["precision"], point["recall"], point["cards_per_day"], point["amount_recall"]
    (0.5, 0.5, 2.0, 0.75)
    """
    frame, values = _checked(frame, scores)
    flagged = values >= threshold
    fraud = frame[schema.TX_FRAUD].to_numpy() == 1
    amount = frame[schema.TX_AMOUNT].to_numpy(dtype=np.float64)
    cards = _cards(frame, values)
    card_flagged = cards["score"].to_numpy() >= threshold
    card_fraud = cards["fraud"].to_numpy() == 1
    n_days = int(cards[DAY].nunique())
    per_day = cards.loc[card_flagged].groupby(DAY).size()
    return {
        "days": float(n_days),
        "precision": _ratio(np.count_nonzero(flagged & fraud), np.count_nonzero(flagged)),
        "recall": _ratio(np.count_nonzero(flagged & fraud), np.count_nonzero(fraud)),
        "alerts_per_day": float(np.count_nonzero(flagged)) / n_days,
        "card_precision": _ratio(
            np.count_nonzero(card_flagged & card_fraud), np.count_nonzero(card_flagged)
        ),
        "card_recall": _ratio(
            np.count_nonzero(card_flagged & card_fraud), np.count_nonzero(card_fraud)
        ),
        "cards_per_day": float(np.count_nonzero(card_flagged)) / n_days,
        "max_cards_per_day": float(per_day.max()) if len(per_day) else 0.0,
        "amount_recall": _ratio(np.sum(amount[flagged & fraud]), np.sum(amount[fraud])),
    }


def _above(highest: float) -> float:
    """A threshold that flags nothing seen: the smallest float32 above `highest`."""
    return float(np.nextafter(np.float32(highest), np.float32(math.inf)))


def alert_budget(
    frame: pd.DataFrame, scores: ArrayLike, k: int = DEFAULT_ALERT_BUDGET
) -> ThresholdChoice:
    """The lowest threshold flagging at most `k` cards per validation day on average.

    Three days, two cards a day; with k = 1 at most three card-days may be flagged. The
    fourth highest card score is 0.5, so the threshold is the lowest score above it:

    >>> import pandas as pd
    >>> days = pd.to_datetime(["2018-08-08", "2018-08-09", "2018-08-10"] * 2, utc=True)
    >>> f = pd.DataFrame({"CUSTOMER_ID": [1, 1, 1, 2, 2, 2], "TX_FRAUD": [1, 0, 1, 0, 0, 1],
    ...                   "TX_AMOUNT": [50.0] * 6, "TX_DATETIME": days})
    >>> scores = [0.875, 0.25, 0.625, 0.5, 0.125, 0.75]
    >>> choice = alert_budget(f, scores, k=1)
    >>> choice.value, choice.validation["cards_per_day"], choice.validation["card_recall"]
    (0.625, 1.0, 1.0)
    >>> alert_budget(f, scores, k=2).value  # room for every card: the lowest score
    0.125
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValidationError(
            f"the alert budget must be a whole number >= 1, not {k!r}", field="alert_budget"
        )
    frame, values = _checked(frame, scores)
    cards = _cards(frame, values)
    allowed = int(k) * int(cards[DAY].nunique())
    ranked = np.sort(cards["score"].to_numpy())[::-1]
    if allowed >= len(ranked):
        value = float(ranked[-1])
    else:
        cut = ranked[allowed]  # the first card-day past the budget must stay unflagged
        above = ranked[ranked > cut]
        value = float(above.min()) if above.size else _above(float(cut))
    return ThresholdChoice(value, "alert_budget", float(k), operating_point(frame, values, value))


def expected_cost(
    frame: pd.DataFrame, scores: ArrayLike, review_cost: float = DEFAULT_REVIEW_COST
) -> ThresholdChoice:
    """The threshold maximising fraud euros caught minus `review_cost` euros per alert.

    Flagging the top one catches 100 € for 5 €; the next two add 10 € of fraud for 10 € of
    review, so the best cut is after the first (net 95 €):

    >>> import pandas as pd
    >>> t = pd.Timestamp("2018-08-08 10:00", tz="UTC")
    >>> f = pd.DataFrame({"CUSTOMER_ID": [1, 2, 3, 4], "TX_FRAUD": [1, 0, 1, 0],
    ...                   "TX_AMOUNT": [100.0, 40.0, 10.0, 70.0], "TX_DATETIME": [t] * 4})
    >>> scores = [0.875, 0.5, 0.375, 0.25]
    >>> choice = expected_cost(f, scores, review_cost=5.0)
    >>> choice.value, choice.validation["net_gain_per_day"]
    (0.875, 95.0)
    >>> expected_cost(f, scores, review_cost=1.0).value  # now 10 € pays for 2 € of review
    0.375
    >>> expected_cost(f, scores, review_cost=500.0).value > 0.875  # no alert pays: none
    True
    """
    if not math.isfinite(review_cost) or review_cost < 0:
        raise ValidationError(
            f"the review cost must be a finite number of euros >= 0, not {review_cost!r}",
            field="review_cost",
        )
    frame, values = _checked(frame, scores)
    order = np.argsort(-values, kind="stable")
    ranked = values[order]
    fraud = frame[schema.TX_FRAUD].to_numpy()[order] == 1
    amount = frame[schema.TX_AMOUNT].to_numpy(dtype=np.float64)[order]
    gain = np.cumsum(np.where(fraud, amount, 0.0) - review_cost)
    # a cut can only fall between distinct scores: after the last row of each tie group
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    best = int(ends[np.argmax(gain[ends])])
    net = float(gain[best])
    value = float(ranked[best])
    if net <= 0:
        value, net = _above(float(ranked[0])), 0.0
    point = operating_point(frame, values, value)
    point["net_gain_per_day"] = net / point["days"]
    return ThresholdChoice(value, "expected_cost", float(review_cost), point)


def choose_threshold(
    policy: str,
    frame: pd.DataFrame,
    scores: ArrayLike,
    *,
    alert_budget_k: int = DEFAULT_ALERT_BUDGET,
    review_cost: float = DEFAULT_REVIEW_COST,
) -> ThresholdChoice:
    """The threshold `policy` picks on validation rows `frame` scored `scores`."""
    policies: dict[str, Callable[[], ThresholdChoice]] = {
        "alert_budget": lambda: alert_budget(frame, scores, alert_budget_k),
        "expected_cost": lambda: expected_cost(frame, scores, review_cost),
    }
    if policy not in policies:
        raise ValidationError(
            f"unknown threshold policy {policy!r}; use one of {POLICIES}", field="threshold_policy"
        )
    return policies[policy]()
