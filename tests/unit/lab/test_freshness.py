"""The freshness lab's business rule on a hand-made replay: a decision within the
authorization window declines the payment, a later one blocks the card from its arrival,
and the frauds completed before are lost. (The lab itself runs quick in test_lab.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.lab.freshness import _outcome

T0 = datetime(2026, 4, 1, 12, tzinfo=UTC)


def _rows() -> pd.DataFrame:
    """Card 1 drained: four 10 € frauds a minute apart; card 2: one genuine payment."""
    seconds = [0, 30, 60, 120, 180]
    return pd.DataFrame(
        {
            schema.TX_DATETIME: pd.to_datetime(
                [T0 + timedelta(seconds=s) for s in seconds], utc=True
            ),
            schema.CUSTOMER_ID: [1, 2, 1, 1, 1],
            schema.TX_AMOUNT: [10.0, 50.0, 10.0, 10.0, 10.0],
            schema.TX_FRAUD: [1, 0, 1, 1, 1],
        }
    )


def test_a_decision_in_time_declines_and_blocks_the_card() -> None:
    flagged = np.array([True, True, False, False, False])
    o = _outcome("now", _rows(), flagged, 0.0, 0.05)
    assert (o.frauds, o.frauds_lost, o.euros_lost, o.frauds_prevented) == (4, 0, 0.0, 4)
    assert (o.alerts, o.genuine_declined) == (2, 1)  # the genuine payment flagged: declined


def test_a_late_decision_loses_the_frauds_completed_within_the_delay() -> None:
    flagged = np.array([True, True, False, False, False])
    o = _outcome("90 s", _rows(), flagged, 0.0, 90.0)
    assert (o.frauds_lost, o.euros_lost, o.frauds_prevented, o.euros_saved) == (2, 20.0, 2, 20.0)
    assert o.genuine_declined == 0  # too late to decline it, and a genuine alert blocks nothing
    late = _outcome("1 h", _rows(), flagged, 0.0, 3600.0)
    assert (late.frauds_lost, late.euros_lost, late.frauds_prevented) == (4, 40.0, 0)


def test_nothing_flagged_loses_every_fraud() -> None:
    o = _outcome("blind", _rows(), np.zeros(5, dtype=bool), 0.0, 0.0)
    assert (o.frauds_lost, o.euros_lost, o.alerts) == (4, 40.0, 0)
