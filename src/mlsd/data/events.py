"""Declarative scenario events injected into the simulation (drift, new fraud patterns).

Each event has a unique `name` (written into the `INJECTED` column of every row it
touches) and a date range `start`..`end` (inclusive; `end` empty = to the last day).
The `type` field picks the kind:

- `amount_shift`: a random `fraction` of customers spend `factor` times more (labels
  unchanged unless `affects_labels`);
- `card_testing`: bursts of small fraudulent amounts at terminals the card never uses
  (fraud scenario 4);
- `compromise_rate`: the number of terminals compromised per day changes (frauds from
  terminals compromised under the event get scenario 5);
- `seasonal`: the transaction rate of every customer is multiplied by `factor`.

Example, as JSON for `mlsd simulate --scenarios FILE.json`:

    [{"type": "amount_shift", "name": "inflation", "start": "2018-06-01",
      "fraction": 0.3, "factor": 1.5}]
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

CARD_TESTING_SCENARIO: Final = 4
COMPROMISE_RATE_SCENARIO: Final = 5


class _Event(BaseModel):
    """Fields shared by every event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    start: date
    end: date | None = None


class AmountShift(_Event):
    """A segment of customers changes its spending: amounts times `factor`.

    By default a pure covariate shift: the shifted transactions keep their labels (the
    handbook's amount rule is applied before the shift). With `affects_labels` the shift
    comes first, so shifted amounts above the threshold become scenario-1 frauds.
    """

    type: Literal["amount_shift"] = "amount_shift"
    fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    factor: float = Field(gt=0.0, le=100.0)
    affects_labels: bool = False


class CardTesting(_Event):
    """Fraudsters test stolen cards with bursts of small amounts at unfamiliar terminals."""

    type: Literal["card_testing"] = "card_testing"
    bursts_per_day: int = Field(default=5, ge=1, le=100_000)
    tx_per_burst: int = Field(default=8, ge=1, le=1_000)
    max_amount: float = Field(default=2.0, gt=0.0, le=1_000.0)
    gap_seconds: float = Field(default=40.0, gt=0.0, le=86_400.0)


class CompromiseRate(_Event):
    """From `start`, `terminals_per_day` terminals are compromised each day (handbook: 2).

    A fractional rate is spread over the days (0.5 = one terminal every other day).
    """

    type: Literal["compromise_rate"] = "compromise_rate"
    terminals_per_day: float = Field(ge=0.0, le=100_000.0)


class Seasonal(_Event):
    """Every customer's daily transaction rate is multiplied by `factor` over the range."""

    type: Literal["seasonal"] = "seasonal"
    factor: float = Field(ge=0.0, le=20.0)


ScenarioEvent = Annotated[
    AmountShift | CardTesting | CompromiseRate | Seasonal, Field(discriminator="type")
]
EVENT_TYPES: Final = ("amount_shift", "card_testing", "compromise_rate", "seasonal")
