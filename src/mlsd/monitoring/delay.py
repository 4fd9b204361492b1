"""Detection delay of the streaming detectors on the simulator's injected scenarios.

The simulator knows the truth: an event starts on a known day. Each scenario simulates a
world, takes a reference period before the event, calibrates every detector on it at the
same false-alarm rate, then streams the rest in time order and records the false alarms
before the event (the quiet period) and how long after its start the first alarm came,
in events and hours.

The monitored stream is what the scenario moves: the transaction amount for an amount
shift and for card testing (bursts of tiny amounts), the fraud label for a change of the
compromise rate (the amounts barely move; labels arrive `label_delay_days` later, so the
delay in time is the one shown plus the label delay), and the hours since the card's
previous transaction for a seasonal surge (every card pays twice as often).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.simulator import simulate
from mlsd.stats.streaming import ADWIN, KSWIN, Detector, PageHinkley

SCENARIOS = ("amount_shift", "card_testing", "compromise_rate", "seasonal")
#: The stream the seasonal scenario is monitored on (a derived per-event value).
GAP_HOURS = "HOURS_SINCE_CARD_PREVIOUS_TX"
DETECTORS: dict[str, Callable[..., Detector]] = {
    "page_hinkley": PageHinkley.calibrate,
    "kswin": KSWIN.calibrate,
    "adwin": ADWIN.calibrate,
}


@dataclass(frozen=True)
class Delay:
    """One detector on one scenario."""

    scenario: str
    detector: str
    stream: str
    rate: float
    quiet_events: int
    false_alarms: int
    delay_events: int | None
    delay_hours: float | None
    label_delay_days: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return asdict(self)


def scenario_config(
    scenario: str,
    *,
    n_customers: int = 1_000,
    n_days: int = 60,
    change_day: int = 50,
    seed: int = 1,
) -> SimulatorConfig:
    """A scaled handbook world with one event of `scenario` from `change_day` on."""
    base = SimulatorConfig.scaled(n_customers, 2 * n_customers, n_days=n_days, seed=seed)
    start = base.start_date + timedelta(days=change_day)
    events: dict[str, dict[str, Any]] = {
        "amount_shift": {"type": "amount_shift", "fraction": 0.3, "factor": 1.5},
        "card_testing": {"type": "card_testing", "bursts_per_day": 5, "tx_per_burst": 8},
        "compromise_rate": {
            "type": "compromise_rate",
            "terminals_per_day": 4 * base.compromised_terminals_per_day,
        },
        "seasonal": {"type": "seasonal", "factor": 2.0},
    }
    if scenario not in events:
        raise ValueError(f"unknown scenario {scenario!r}; use one of {SCENARIOS}")
    event = {"name": scenario, "start": start, **events[scenario]}
    return base.with_changes(scenarios=[event])


def _stream(scenario: str, tx: pd.DataFrame) -> tuple[str, pd.Series]:
    """(name, per-transaction value) of what `scenario` moves, in `tx`'s order."""
    if scenario == "compromise_rate":
        return schema.TX_FRAUD, tx[schema.TX_FRAUD].astype(np.float64)
    if scenario == "seasonal":
        gap = tx.groupby(schema.CUSTOMER_ID)[schema.TX_DATETIME].diff()
        return GAP_HOURS, gap.dt.total_seconds() / 3600.0
    return schema.TX_AMOUNT, tx[schema.TX_AMOUNT].astype(np.float64)


def measure(
    scenario: str,
    *,
    rate: float = 1e-5,
    reference: tuple[int, int] = (28, 42),
    change_day: int = 50,
    n_customers: int = 1_000,
    n_days: int = 60,
    seed: int = 1,
    detectors: tuple[str, ...] = tuple(DETECTORS),
) -> list[Delay]:
    """Every detector's false alarms and delay on one scenario.

    `reference` is the day range [first, last) the detectors are calibrated on: after the
    simulator's warm-up (terminals stay compromised 28 days, so the fraud rate climbs over
    the first four weeks), before the event. Days from its end on are monitored.
    """
    config = scenario_config(
        scenario, n_customers=n_customers, n_days=n_days, change_day=change_day, seed=seed
    )
    tx = simulate(config).transactions
    column, values_of = _stream(scenario, tx)
    tx = tx[values_of.notna()].reset_index(drop=True)  # a card's first payment has no gap
    days = tx[schema.TX_TIME_DAYS].to_numpy()
    values = values_of.dropna().to_numpy(dtype=np.float64)
    ref_values = values[(days >= reference[0]) & (days < reference[1])]
    monitored = days >= reference[1]
    stream, when = values[monitored], tx[schema.TX_DATETIME][monitored].reset_index(drop=True)
    change = int(np.searchsorted(days[monitored], change_day))
    out = []
    for i, name in enumerate(detectors):
        detector = DETECTORS[name](ref_values, rate=rate, rng=np.random.default_rng(seed + i))
        alarms = [j for j, x in enumerate(stream.tolist()) if detector.update(x).drift_detected]
        before = [j for j in alarms if j < change]
        after = [j for j in alarms if j >= change]
        first = after[0] if after else None
        hours = None
        if first is not None:
            gap: pd.Timedelta = when[first] - when[change]
            hours = gap.total_seconds() / 3600
        out.append(
            Delay(
                scenario=scenario,
                detector=name,
                stream=column,
                rate=rate,
                quiet_events=change,
                false_alarms=len(before),
                delay_events=None if first is None else first - change,
                delay_hours=hours,
                label_delay_days=config.label_delay_days if column == schema.TX_FRAUD else 0,
            )
        )
    return out
