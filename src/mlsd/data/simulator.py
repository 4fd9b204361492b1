"""`simulate(config) -> Dataset`: the handbook's transaction simulator, vectorised.

Seeded and deterministic: each stage (profiles, transactions, each fraud scenario, each
injected event, the customers' age bands) draws from its own stream of one
`numpy.random.SeedSequence(seed)`: a stage added later changes no earlier stage's values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time

import numpy as np
import pandas as pd

from mlsd.data import frauds, inject, schema
from mlsd.data.config import SimulatorConfig
from mlsd.data.events import CARD_TESTING_SCENARIO, COMPROMISE_RATE_SCENARIO
from mlsd.data.profiles import generate_profiles
from mlsd.data.segments import with_segments
from mlsd.data.transactions import RawTransactions, generate_transactions

Progress = Callable[[str], None]
STAGES = ("profiles", "transactions", "frauds", "table")

_PROFILES, _TRANSACTIONS, _TERMINALS, _CUSTOMERS, _CUSTOMER_DRAWS, _SEGMENTS = 0, 1, 2, 3, 4, 5
_EVENT_STREAM = 100


@dataclass(frozen=True)
class Dataset:
    """A simulated dataset: transactions sorted by time, profile tables, and its config."""

    transactions: pd.DataFrame
    customers: pd.DataFrame
    terminals: pd.DataFrame
    config: SimulatorConfig


def _rng(seed: int, stage: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stage,)))


def _noop(_: str) -> None:
    return None


def simulate(config: SimulatorConfig | None = None, progress: Progress | None = None) -> Dataset:
    """Simulate customers, terminals and their transactions with the handbook's frauds.

    `progress` is called with a short label after each stage (for progress bars).
    """
    config = config or SimulatorConfig()
    step = progress or _noop
    seed, n_days = config.seed, config.n_days

    def event_rng(index: int) -> np.random.Generator:
        return _rng(seed, _EVENT_STREAM + index)

    profiles = generate_profiles(
        config.n_customers, config.n_terminals, config.radius, _rng(seed, _PROFILES)
    )
    step("profiles")
    raw = generate_transactions(
        profiles, n_days, inject.day_rates(config), _rng(seed, _TRANSACTIONS)
    )
    tags = np.zeros(len(raw), dtype=np.int64)
    inject.tag_seasonal(config, raw.days, tags)
    inject.shift_amounts(config, raw, tags, event_rng, before_labels=True)
    step("transactions")

    fraud, scenario = _handbook_frauds(config, raw, tags, event_rng)
    step("frauds")

    extra, extra_tags = inject.card_testing(
        config, config.n_customers, config.n_terminals, event_rng
    )
    if len(extra):
        raw = RawTransactions(
            seconds=np.concatenate([raw.seconds, extra.seconds]),
            customer=np.concatenate([raw.customer, extra.customer]),
            terminal=np.concatenate([raw.terminal, extra.terminal]),
            amount=np.concatenate([raw.amount, extra.amount]),
        )
        tags = np.concatenate([tags, extra_tags])
        fraud = np.concatenate([fraud, np.ones(len(extra), dtype=np.int8)])
        scenario = np.concatenate(
            [scenario, np.full(len(extra), CARD_TESTING_SCENARIO, dtype=np.int8)]
        )
    transactions = _frame(config, raw, fraud, scenario, tags)
    step("table")
    return Dataset(
        transactions=transactions,
        customers=with_segments(profiles.customers_frame(), _rng(seed, _SEGMENTS)),
        terminals=profiles.terminals_frame(),
        config=config,
    )


def _handbook_frauds(
    config: SimulatorConfig,
    raw: RawTransactions,
    tags: np.ndarray,
    event_rng: Callable[[int], np.random.Generator],
) -> tuple[np.ndarray, np.ndarray]:
    """Scenarios 1, 2 (with compromise-rate events) and 3, in the handbook's order."""
    n_days, days = config.n_days, raw.days
    fraud = np.zeros(len(raw), dtype=np.int8)
    scenario = np.zeros(len(raw), dtype=np.int8)

    over = raw.amount > config.amount_fraud_threshold
    fraud[over], scenario[over] = 1, frauds.AMOUNT_SCENARIO
    inject.shift_amounts(config, raw, tags, event_rng, before_labels=False)

    # Scenario 2: the baseline draws are always made, then cut to each day's number;
    # extra terminals asked for by a compromise_rate event come from the event's stream.
    default = frauds.spread(config.compromised_terminals_per_day, n_days)
    per_day, owner = inject.compromise_plan(config)
    drawn = frauds.Compromises.draw(
        default.tolist(), config.n_terminals, _rng(config.seed, _TERMINALS)
    )
    rank = np.arange(len(drawn.days)) - np.searchsorted(drawn.days, drawn.days)
    base = drawn.select(rank < per_day[drawn.days])
    duration = config.terminal_compromise_days
    hit = frauds.covered(raw.terminal, days, base, duration, n_days)
    fraud[hit], scenario[hit] = 1, frauds.TERMINAL_SCENARIO
    for i in np.unique(owner[owner >= 0]).tolist():
        extra_per_day = np.where(owner == i, np.maximum(per_day - default, 0), 0)
        extra = frauds.Compromises.draw(extra_per_day.tolist(), config.n_terminals, event_rng(i))
        more = frauds.covered(raw.terminal, days, extra, duration, n_days) & ~hit
        fraud[more], scenario[more] = 1, COMPROMISE_RATE_SCENARIO
        tags[more] |= inject.bit(i)

    customers = frauds.Compromises.draw(
        frauds.spread(config.compromised_customers_per_day, n_days).tolist(),
        config.n_customers,
        _rng(config.seed, _CUSTOMERS),
    )
    draws = frauds.customer_fraud_draws(
        raw.customer,
        days,
        customers,
        config.customer_compromise_days,
        n_days,
        _rng(config.seed, _CUSTOMER_DRAWS),
    )
    picked = draws > 0
    raw.amount[picked] = np.round(
        raw.amount[picked] * frauds.CUSTOMER_AMOUNT_FACTOR ** draws[picked], 2
    )
    fraud[picked], scenario[picked] = 1, frauds.CUSTOMER_SCENARIO
    return fraud, scenario


def _frame(
    config: SimulatorConfig,
    raw: RawTransactions,
    fraud: np.ndarray,
    scenario: np.ndarray,
    tags: np.ndarray,
) -> pd.DataFrame:
    """The transactions table, sorted by time, ids increasing with time."""
    order = np.argsort(raw.seconds, kind="stable")
    seconds = raw.seconds[order]
    start = pd.Timestamp(datetime.combine(config.start_date, time(), tzinfo=UTC)).as_unit("us")
    when = start + pd.to_timedelta(seconds, unit="s")
    delay = pd.Timedelta(days=config.label_delay_days)
    injected = inject.tag_names(config, tags[order]) if config.scenarios else ""
    frame = pd.DataFrame(
        {
            schema.TRANSACTION_ID: np.arange(len(order), dtype=np.int64),
            schema.TX_DATETIME: when,
            schema.CUSTOMER_ID: raw.customer[order],
            schema.TERMINAL_ID: raw.terminal[order],
            schema.TX_AMOUNT: raw.amount[order],
            schema.TX_TIME_SECONDS: seconds,
            schema.TX_TIME_DAYS: seconds // 86_400,
            schema.TX_FRAUD: fraud[order],
            schema.TX_FRAUD_SCENARIO: scenario[order],
            schema.LABEL_AVAILABLE_AT: when + delay,
            schema.INJECTED: injected,
        },
        copy=False,  # fresh arrays: skip pandas' block consolidation copy
    )
    frame[schema.INJECTED] = frame[schema.INJECTED].astype(str)
    return frame
