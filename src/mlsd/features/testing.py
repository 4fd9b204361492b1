"""Synthetic transactions with the dataset schema, for tests and benchmarks of the feature
store when no simulated dataset is at hand. Vectorised: 1.8 M rows in a few seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlsd.data import schema


def synthetic_transactions(
    n_customers: int = 50,
    n_terminals: int = 80,
    days: int = 40,
    tx_per_day: float = 2.0,
    seed: int = 7,
    start: datetime = datetime(2018, 4, 1, tzinfo=UTC),
    tie_fraction: float = 0.02,
) -> pd.DataFrame:
    """Transactions with the columns of `schema.TX_COLUMNS`, sorted by time.

    A `tie_fraction` of transactions copy the timestamp of the customer's previous one,
    so equal event times get exercised.
    """
    rng = np.random.default_rng(seed)
    per_cust_day = rng.poisson(tx_per_day, size=(n_customers, days))
    cust = np.repeat(np.tile(np.arange(n_customers), days), per_cust_day.T.ravel())
    day = np.repeat(np.repeat(np.arange(days), n_customers), per_cust_day.T.ravel())
    n = len(cust)
    secs = day.astype(np.int64) * 86_400 + rng.integers(0, 86_400, size=n)
    order = np.lexsort((secs, cust))
    cust, secs = cust[order], secs[order]
    tie = rng.random(n) < tie_fraction
    tie[0] = False
    same = np.r_[False, cust[1:] == cust[:-1]]
    tie &= same
    secs = np.where(tie, np.r_[secs[:1], secs[:-1]], secs)
    term = rng.integers(0, n_terminals, size=n)
    amount = np.round(rng.gamma(2.0, 30.0, size=n), 2)
    risky = rng.random(n_terminals) < 0.1
    fraud = (rng.random(n) < np.where(risky[term], 0.2, 0.005)).astype(np.int8)
    order = np.lexsort((cust, secs))
    ts = pd.Timestamp(start) + pd.to_timedelta(secs[order], unit="s")
    frame = pd.DataFrame(
        {
            schema.TRANSACTION_ID: np.arange(n, dtype=np.int64),
            schema.TX_DATETIME: pd.DatetimeIndex(ts).as_unit("us"),
            schema.CUSTOMER_ID: cust[order].astype(np.int64),
            schema.TERMINAL_ID: term[order].astype(np.int64),
            schema.TX_AMOUNT: amount[order],
            schema.TX_TIME_SECONDS: secs[order].astype(np.int64),
            schema.TX_TIME_DAYS: (secs[order] // 86_400).astype(np.int64),
            schema.TX_FRAUD: fraud[order],
            schema.TX_FRAUD_SCENARIO: fraud[order],
        }
    )
    frame[schema.LABEL_AVAILABLE_AT] = frame[schema.TX_DATETIME] + timedelta(days=7)
    frame[schema.INJECTED] = ""
    return frame


def write_transactions(frame: pd.DataFrame, dataset_dir: Path) -> Path:
    """Write transactions as one Parquet file per day, like the simulator's layout."""
    folder = Path(dataset_dir) / schema.TRANSACTIONS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    days = frame[schema.TX_DATETIME].dt.strftime("%Y-%m-%d")
    for name, part in frame.groupby(days, sort=True):
        part.to_parquet(folder / f"{name}.parquet", index=False)
    return Path(dataset_dir)
