"""The handbook's evaluation protocol: train, label-delay and test blocks of days.

Fraud Detection Handbook, sections 3.4 and 5.2: a model is trained on `train_days`
days, labels of the next `delay_days` days are not yet known when it goes live, and it
is tested on the `test_days` days after the delay. Cards known to be compromised when a
test day is scored are removed from that day: frauds seen in the training days, plus
the frauds whose labels came in since (each test day minus the delay). Prequential
validation repeats the block several times, shifted back in time by the test length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.errors import ValidationError

DAY = "TX_DAY"
"""A column added to frames here: the UTC calendar day of each transaction."""


@dataclass(frozen=True)
class Split:
    """One train / delay / test block, by calendar day (UTC)."""

    train_start: date
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7

    def __post_init__(self) -> None:
        for name in ("train_days", "test_days"):
            if getattr(self, name) < 1:
                raise ValidationError(f"{name} must be at least 1", field=name)
        if self.delay_days < 0:
            raise ValidationError("delay_days must not be negative", field="delay_days")

    @property
    def train_end(self) -> date:
        """First day after the training block."""
        return self.train_start + timedelta(days=self.train_days)

    @property
    def test_start(self) -> date:
        """First test day."""
        return self.train_end + timedelta(days=self.delay_days)

    @property
    def test_end(self) -> date:
        """First day after the test block."""
        return self.test_start + timedelta(days=self.test_days)

    def shifted(self, days: int) -> Split:
        """The same block moved by `days` (negative: back in time)."""
        return Split(
            self.train_start + timedelta(days=days),
            self.train_days,
            self.delay_days,
            self.test_days,
        )

    def to_dict(self) -> dict[str, str]:
        """Periods as ISO dates (end exclusive), for lineage and reports."""
        return {
            "train_start": self.train_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "test_start": self.test_start.isoformat(),
            "test_end": self.test_end.isoformat(),
        }


def day_start(day: date) -> datetime:
    """Midnight UTC of `day`."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def with_day(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the `TX_DAY` column (the UTC date of `TX_DATETIME`), added if missing."""
    if DAY in frame.columns:
        return frame
    if schema.TX_DATETIME not in frame.columns:
        raise ValidationError("the frame has no TX_DATETIME column", field=schema.TX_DATETIME)
    stamps = pd.to_datetime(frame[schema.TX_DATETIME])
    if stamps.dt.tz is None:
        raise ValidationError("TX_DATETIME must be timezone-aware (UTC)", field="TX_DATETIME")
    out = frame.copy()
    out[DAY] = stamps.dt.tz_convert("UTC").dt.date
    return out


def split_frame(frame: pd.DataFrame, split: Split) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test rows of `split`, known-compromised cards removed from each test day.

    `frame` must hold the labels (`TX_FRAUD`) of the delay days too: they are what
    makes a card known. As in the handbook's `get_train_test_set`, the cards known on
    test day i are those with a fraud in [train_start, test day i - delay).
    """
    for column in (schema.CUSTOMER_ID, schema.TX_FRAUD):
        if column not in frame.columns:
            raise ValidationError(f"the frame has no {column} column", field=column)
    frame = with_day(frame)
    days = frame[DAY]
    train = frame[(days >= split.train_start) & (days < split.train_end)]
    frauds = frame[(frame[schema.TX_FRAUD] == 1) & (days >= split.train_start)]
    fraud_days = frauds[DAY].to_numpy()
    fraud_cards = frauds[schema.CUSTOMER_ID].to_numpy()
    parts = []
    for offset in range(split.test_days):
        test_day = split.test_start + timedelta(days=offset)
        known_before = test_day - timedelta(days=split.delay_days)
        known = np.unique(fraud_cards[fraud_days < known_before])
        rows = frame[(days == test_day) & ~frame[schema.CUSTOMER_ID].isin(known)]
        parts.append(rows)
    test = pd.concat(parts) if parts else frame.iloc[:0]
    return train, test


def prequential_splits(last: Split, n_folds: int) -> list[Split]:
    """`n_folds` blocks ending with `last`, each shifted back by the test length."""
    if n_folds < 1:
        raise ValidationError("n_folds must be at least 1", field="n_folds")
    return [last.shifted(-fold * last.test_days) for fold in range(n_folds)]


def validation_split(test_split: Split) -> Split:
    """The block used for model selection before testing on `test_split` (handbook 5.3).

    Its test days are the test split's training days, so selection never sees test data.
    """
    return test_split.shifted(-(test_split.delay_days + test_split.test_days))
