"""Held-out days to replay as live traffic.

`split_days` keeps the first days as history (to build features and train on) and the
rest as held-out days, written as a dataset of their own: the same customers and
terminals, later transactions, never seen by training.
"""

from __future__ import annotations

from datetime import timedelta

from mlsd.data import schema
from mlsd.data.simulator import Dataset
from mlsd.errors import ValidationError

DAY_SECONDS = 86_400


def split_days(dataset: Dataset, n_days: int) -> tuple[Dataset, Dataset]:
    """(the first `n_days` days, the days after them), each a dataset of its own.

    The held-out part starts on its own first day: its `TX_TIME_DAYS` and
    `TX_TIME_SECONDS` count from there, like any simulated dataset's. Both keep the
    profile tables (the same customers and terminals); transaction ids are unchanged.

    >>> from mlsd.data.config import SimulatorConfig
    >>> from mlsd.data.simulator import simulate
    >>> d = simulate(SimulatorConfig.scaled(50, 100, n_days=5, seed=1))
    >>> history, held_out = split_days(d, 3)
    >>> history.config.n_days, held_out.config.n_days, str(held_out.config.start_date)
    (3, 2, '2018-04-04')
    >>> len(history.transactions) + len(held_out.transactions) == len(d.transactions)
    True
    """
    total = dataset.config.n_days
    if not 0 < n_days < total:
        raise ValidationError(
            f"the split day must be inside the dataset's {total} days, got {n_days}",
            field="n_days",
        )
    tx = dataset.transactions
    late = tx[schema.TX_TIME_DAYS].to_numpy() >= n_days
    history = tx[~late].reset_index(drop=True)
    held = tx[late].reset_index(drop=True)
    held[schema.TX_TIME_DAYS] = held[schema.TX_TIME_DAYS] - n_days
    held[schema.TX_TIME_SECONDS] = held[schema.TX_TIME_SECONDS] - n_days * DAY_SECONDS
    first = dataset.config.model_copy(update={"n_days": n_days})
    second = dataset.config.model_copy(
        update={
            "n_days": total - n_days,
            "start_date": dataset.config.start_date + timedelta(days=n_days),
        }
    )
    return (
        Dataset(history, dataset.customers, dataset.terminals, first),
        Dataset(held, dataset.customers, dataset.terminals, second),
    )
