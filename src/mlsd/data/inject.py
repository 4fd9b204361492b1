"""Apply declarative scenario events (`mlsd.data.events`) inside the simulation.

Every event draws from its own random stream, so adding an event leaves the draws of
the handbook's process untouched wherever the event has no effect. Rows an event
touches get bit `i` (the event's position) set in a tag mask, turned into the
`INJECTED` column (event names joined by "+") at the end.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlsd.data.config import SimulatorConfig
from mlsd.data.events import AmountShift, CardTesting, CompromiseRate, Seasonal
from mlsd.data.frauds import spread
from mlsd.data.profiles import FloatArray, IntArray
from mlsd.data.transactions import SECONDS_PER_DAY, RawTransactions

RngFor = Callable[[int], np.random.Generator]


def bit(index: int) -> np.int64:
    return np.int64(1) << np.int64(index)


def day_rates(config: SimulatorConfig) -> FloatArray:
    """Rate multiplier per day from `seasonal` events (they compose by multiplication)."""
    rate = np.ones(config.n_days)
    for event in config.scenarios:
        if isinstance(event, Seasonal):
            first, last = config.event_days(event)
            rate[first : last + 1] *= event.factor
    return rate


def tag_seasonal(config: SimulatorConfig, days: IntArray, tags: IntArray) -> None:
    """Tag every transaction generated on a seasonal event's days."""
    for i, event in enumerate(config.scenarios):
        if isinstance(event, Seasonal):
            first, last = config.event_days(event)
            tags[(days >= first) & (days <= last)] |= bit(i)


def shift_amounts(
    config: SimulatorConfig,
    raw: RawTransactions,
    tags: IntArray,
    rng_for: RngFor,
    *,
    before_labels: bool,
) -> None:
    """Multiply the amounts of a random customer segment over each event's range.

    Called twice: before the fraud rules for events with `affects_labels` (the amount
    rule then sees the new amounts), after scenario 1 for the others (pure drift).
    """
    days = raw.days
    for i, event in enumerate(config.scenarios):
        if not isinstance(event, AmountShift) or event.affects_labels != before_labels:
            continue
        rng = rng_for(i)
        size = max(1, round(event.fraction * config.n_customers))
        segment = np.zeros(config.n_customers, dtype=bool)
        segment[rng.choice(config.n_customers, size=size, replace=False)] = True
        first, last = config.event_days(event)
        hit = segment[raw.customer] & (days >= first) & (days <= last)
        raw.amount[hit] = np.round(raw.amount[hit] * event.factor, 2)
        tags[hit] |= bit(i)


def compromise_plan(config: SimulatorConfig) -> tuple[IntArray, IntArray]:
    """Terminals to compromise per day, and which event (or -1) sets each day's number."""
    per_day = spread(config.compromised_terminals_per_day, config.n_days)
    owner = np.full(config.n_days, -1, dtype=np.int64)
    for i, event in enumerate(config.scenarios):
        if isinstance(event, CompromiseRate):
            first, last = config.event_days(event)
            per_day[first : last + 1] = spread(event.terminals_per_day, config.n_days)[
                first : last + 1
            ]
            owner[first : last + 1] = i
    return per_day, owner


def card_testing(
    config: SimulatorConfig, n_customers: int, n_terminals: int, rng_for: RngFor
) -> tuple[RawTransactions, IntArray]:
    """Bursts of small amounts: each burst one card, one terminal, a few seconds apart."""
    parts: list[RawTransactions] = []
    part_tags: list[IntArray] = []
    for i, event in enumerate(config.scenarios):
        if not isinstance(event, CardTesting):
            continue
        rng = rng_for(i)
        first, last = config.event_days(event)
        n_bursts = (last - first + 1) * event.bursts_per_day
        burst_day = np.repeat(np.arange(first, last + 1, dtype=np.int64), event.bursts_per_day)
        customer = rng.integers(0, n_customers, size=n_bursts, dtype=np.int64)
        terminal = rng.integers(0, n_terminals, size=n_bursts, dtype=np.int64)
        start = rng.integers(0, SECONDS_PER_DAY, size=n_bursts, dtype=np.int64)
        k = event.tx_per_burst
        gaps = rng.exponential(event.gap_seconds, size=(n_bursts, k))
        gaps[:, 0] = 0.0
        offset = np.cumsum(gaps, axis=1).astype(np.int64)
        time_of_day = np.minimum(start[:, None] + offset, SECONDS_PER_DAY - 1)
        amount = np.round(rng.uniform(0.01, event.max_amount, size=n_bursts * k), 2)
        parts.append(
            RawTransactions(
                seconds=(time_of_day + burst_day[:, None] * SECONDS_PER_DAY).ravel(),
                customer=np.repeat(customer, k),
                terminal=np.repeat(terminal, k),
                amount=np.maximum(amount, 0.01),
            )
        )
        part_tags.append(np.full(n_bursts * k, bit(i), dtype=np.int64))
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return RawTransactions(empty, empty, empty, np.empty(0)), empty
    return (
        RawTransactions(
            seconds=np.concatenate([p.seconds for p in parts]),
            customer=np.concatenate([p.customer for p in parts]),
            terminal=np.concatenate([p.terminal for p in parts]),
            amount=np.concatenate([p.amount for p in parts]),
        ),
        np.concatenate(part_tags),
    )


def tag_names(config: SimulatorConfig, tags: IntArray) -> np.ndarray:
    """The `INJECTED` strings: names of the events whose bit is set, joined by '+'."""
    unique, inverse = np.unique(tags, return_inverse=True)
    names = []
    for mask in unique.tolist():
        names.append("+".join(e.name for i, e in enumerate(config.scenarios) if mask >> i & 1))
    return np.asarray(names, dtype=object)[inverse]
