"""A tiny synthetic transaction table with the simulator's columns, for protocol tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlsd.data import schema

START = pd.Timestamp("2018-04-01", tz="UTC")


def transactions(n_customers: int = 200, n_days: int = 40, seed: int = 0) -> pd.DataFrame:
    """Random transactions: compromised terminals and large amounts are fraud."""
    rng = np.random.default_rng(seed)
    n = n_customers * n_days * 2
    day = rng.integers(0, n_days, n)
    seconds = day * 86_400 + rng.integers(0, 86_400, n)
    customer = rng.integers(0, n_customers, n)
    terminal = rng.integers(0, n_customers * 2, n)
    amount = np.round(rng.gamma(2.0, 30.0, n), 2)
    compromised = rng.random(n_customers * 2) < 0.03
    fraud = (compromised[terminal] & (rng.random(n) < 0.7)) | (amount > 220)
    order = np.argsort(seconds, kind="stable")
    return pd.DataFrame(
        {
            schema.TRANSACTION_ID: np.arange(n, dtype=np.int64),
            schema.TX_DATETIME: START + pd.to_timedelta(seconds[order], unit="s"),
            schema.CUSTOMER_ID: customer[order].astype(np.int64),
            schema.TERMINAL_ID: terminal[order].astype(np.int64),
            schema.TX_AMOUNT: amount[order],
            schema.TX_TIME_SECONDS: seconds[order].astype(np.int64),
            schema.TX_TIME_DAYS: day[order].astype(np.int64),
            schema.TX_FRAUD: fraud[order].astype(np.int8),
        }
    )
