"""A loop-based reference simulator, written the way the Fraud Detection Handbook's is:
one Python loop per customer, day and transaction, then one pandas pass per day for
each fraud scenario. Used only by `benchmarks/simulator.py` for an in-run speed ratio.
"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd

Customer = dict[str, float | list[int]]
COLUMNS = ["TX_TIME_SECONDS", "TX_TIME_DAYS", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"]


def _profiles(n_customers: int, n_terminals: int, r: float, seed: int) -> list[Customer]:
    rng = np.random.RandomState(seed)
    customers: list[Customer] = []
    for _ in range(n_customers):
        x, y = rng.uniform(0, 100), rng.uniform(0, 100)
        mean = rng.uniform(5, 100)
        customers.append({"x": x, "y": y, "mean": mean, "std": mean / 2, "nb": rng.uniform(0, 4)})
    terminals = rng.uniform(0, 100, size=(n_terminals, 2))
    for c in customers:
        dist = np.sqrt(np.sum((np.array([c["x"], c["y"]]) - terminals) ** 2, axis=1))
        c["available"] = list(np.where(dist < r)[0])
    return customers


def _transactions(customers: list[Customer], n_days: int) -> pd.DataFrame:
    rows = []
    for cid, c in enumerate(customers):
        random.seed(cid)
        np.random.seed(cid)
        available = c["available"]
        assert isinstance(available, list)
        for day in range(n_days):
            for _ in range(np.random.poisson(c["nb"])):
                t = int(np.random.normal(86400 / 2, 20000))
                if 0 < t < 86400:
                    amount = np.random.normal(c["mean"], c["std"])
                    if amount < 0:
                        amount = np.random.uniform(0, float(c["mean"]) * 2)
                    if available:
                        terminal = random.choice(available)
                        rows.append((t + day * 86400, day, cid, terminal, round(amount, 2)))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values("TX_TIME_SECONDS").reset_index(drop=True)


def _frauds(tx: pd.DataFrame, n_customers: int, n_terminals: int) -> pd.DataFrame:
    tx["TX_FRAUD"] = 0
    tx["TX_FRAUD_SCENARIO"] = 0
    over = tx.TX_AMOUNT > 220
    tx.loc[over, "TX_FRAUD"] = 1
    tx.loc[over, "TX_FRAUD_SCENARIO"] = 1
    terminal_ids = pd.Series(range(n_terminals))
    customer_ids = pd.Series(range(n_customers))
    for day in range(int(tx.TX_TIME_DAYS.max())):
        compromised = terminal_ids.sample(n=2, random_state=day)
        window = tx.TX_TIME_DAYS.between(day, day + 27)
        hit = tx[window & tx.TERMINAL_ID.isin(compromised)]
        tx.loc[hit.index, "TX_FRAUD"] = 1
        tx.loc[hit.index, "TX_FRAUD_SCENARIO"] = 2
    for day in range(int(tx.TX_TIME_DAYS.max())):
        compromised = customer_ids.sample(n=3, random_state=day).values
        window = tx.TX_TIME_DAYS.between(day, day + 13)
        hit = tx[window & tx.CUSTOMER_ID.isin(compromised)]
        random.seed(day)
        picked = random.sample(list(hit.index.values), k=len(hit) // 3)
        tx.loc[picked, "TX_AMOUNT"] = tx.loc[picked, "TX_AMOUNT"] * 5
        tx.loc[picked, "TX_FRAUD"] = 1
        tx.loc[picked, "TX_FRAUD_SCENARIO"] = 3
    return tx


def simulate_loop(n_customers: int, n_terminals: int, n_days: int, r: float = 5.0) -> pd.DataFrame:
    """The whole loop-based pipeline: profiles, transactions, frauds."""
    customers = _profiles(n_customers, n_terminals, r, seed=0)
    return _frauds(_transactions(customers, n_days), n_customers, n_terminals)
