"""The simulator's step in `mlsd demo`: a small dataset in a few seconds."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from mlsd.data.config import SimulatorConfig
from mlsd.data.io import write_dataset
from mlsd.data.replay import split_days
from mlsd.data.simulator import simulate
from mlsd.data.summary import Summary, summarize


def drift_scenarios(start: date, n_days: int) -> list[dict[str, Any]]:
    """Drift for the monitoring demo over the last third of the range: richer customers
    and a card-testing campaign."""
    onset = start + timedelta(days=n_days - max(1, n_days // 3))
    return [
        {"type": "amount_shift", "name": "spending_up", "start": onset, "fraction": 0.3,
         "factor": 1.8},
        {"type": "card_testing", "name": "card_testing", "start": onset, "bursts_per_day": 3},
    ]  # fmt: skip


def demo_step(
    out: Path,
    n_customers: int = 500,
    n_terminals: int = 1000,
    n_days: int = 60,
    seed: int = 0,
    with_drift: bool = False,
    overwrite: bool = True,
    replay_days: int = 0,
    replay_out: Path | None = None,
) -> Summary:
    """Simulate a small dataset into `out` (replacing an earlier dataset) and summarise it.

    Compromise rates are scaled to the smaller world (`SimulatorConfig.scaled`), so the
    fraud rate stays near the handbook's 0.8 %.

    `with_drift` adds an amount shift and card-testing bursts over the last third.

    `replay_days` simulates that many days more, in the same world, and writes them as a
    dataset of their own to `replay_out`: held-out days to replay as live traffic. The
    summary is of the `n_days` in `out`.
    """
    if replay_days < 0:
        raise ValueError("replay_days must be >= 0")
    if replay_days and replay_out is None:
        raise ValueError("replay_days needs replay_out, the folder of the held-out days")
    start = date(2018, 4, 1)
    config = SimulatorConfig.scaled(
        n_customers,
        n_terminals,
        n_days=n_days + replay_days,
        seed=seed,
        start_date=start,
        scenarios=drift_scenarios(start, n_days) if with_drift else [],
    )
    dataset = simulate(config)
    if replay_days and replay_out is not None:
        dataset, held_out = split_days(dataset, n_days)
        write_dataset(held_out, replay_out, overwrite=overwrite)
    write_dataset(dataset, out, overwrite=overwrite)
    return summarize(dataset.transactions, n_days)
