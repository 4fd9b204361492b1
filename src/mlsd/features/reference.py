"""The handbook's pandas feature code (section 3.3), kept as the reference the DuckDB
pipeline is checked against. Slow on purpose: one `groupby.apply` per entity."""

from __future__ import annotations

import pandas as pd

from mlsd.data import schema


def _customer(tx: pd.DataFrame, windows: tuple[int, ...]) -> pd.DataFrame:
    tx = tx.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID], kind="stable")
    tx.index = pd.DatetimeIndex(tx[schema.TX_DATETIME])
    for w in windows:
        roll = tx[schema.TX_AMOUNT].rolling(f"{w}D")
        total, count = roll.sum(), roll.count()
        tx[f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"] = list(count)
        tx[f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"] = list(total / count)
    tx.index = pd.Index(tx[schema.TRANSACTION_ID].to_numpy(), name=None)
    return tx


def _terminal(tx: pd.DataFrame, windows: tuple[int, ...], delay: int) -> pd.DataFrame:
    tx = tx.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID], kind="stable")
    tx.index = pd.DatetimeIndex(tx[schema.TX_DATETIME])
    fraud = tx[schema.TX_FRAUD].astype("float64")
    nb_fraud_delay = fraud.rolling(f"{delay}D").sum()
    nb_tx_delay = fraud.rolling(f"{delay}D").count()
    for w in windows:
        nb_fraud_window = fraud.rolling(f"{delay + w}D").sum() - nb_fraud_delay
        nb_tx_window = fraud.rolling(f"{delay + w}D").count() - nb_tx_delay
        tx[f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"] = list(nb_tx_window)
        tx[f"TERMINAL_ID_RISK_{w}DAY_WINDOW"] = list((nb_fraud_window / nb_tx_window).fillna(0))
    tx.index = pd.Index(tx[schema.TRANSACTION_ID].to_numpy(), name=None)
    return tx


def reference_features(
    transactions: pd.DataFrame, windows: tuple[int, ...] = (1, 7, 30), delay: int = 7
) -> pd.DataFrame:
    """All 15 handbook features per transaction, indexed by TRANSACTION_ID, sorted by it."""
    tx = transactions.copy()
    tx["TX_DURING_WEEKEND"] = (tx[schema.TX_DATETIME].dt.day_of_week >= 5).astype("float64")
    tx["TX_DURING_NIGHT"] = (tx[schema.TX_DATETIME].dt.hour <= 6).astype("float64")
    parts = [_customer(g, windows) for _, g in tx.groupby(schema.CUSTOMER_ID, sort=False)]
    tx = pd.concat(parts)
    parts = [_terminal(g, windows, delay) for _, g in tx.groupby(schema.TERMINAL_ID, sort=False)]
    out = pd.concat(parts).sort_index()
    out.index.name = schema.TRANSACTION_ID
    return out
