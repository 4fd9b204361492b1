"""Summary statistics of a simulated dataset, comparable with the handbook's.

Handbook reference (default config, its seeds): 1,754,155 transactions, 14,681 frauds
(0.84 %): scenario 1 = 978, scenario 2 = 9,099, scenario 3 = 4,604 (counted as new
frauds added by each scenario, in order).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

import pandas as pd

from mlsd.data import schema

HANDBOOK: Final = {
    "transactions": 1_754_155,
    "frauds": 14_681,
    "fraud_rate": 14_681 / 1_754_155,
    "tx_per_day": 1_754_155 / 183,
    "scenario_share": {1: 978 / 14_681, 2: 9_099 / 14_681, 3: 4_604 / 14_681},
}


@dataclass(frozen=True)
class Summary:
    """What `mlsd simulate` prints: totals, per scenario, per day."""

    transactions: int
    frauds: int
    fraud_rate: float
    days: int
    tx_per_day_mean: float
    tx_per_day_min: int
    tx_per_day_max: int
    frauds_per_day_mean: float
    per_scenario: dict[int, int] = field(default_factory=dict)
    per_injected: dict[str, int] = field(default_factory=dict)
    per_day_transactions: list[int] = field(default_factory=list)
    per_day_frauds: list[int] = field(default_factory=list)

    @property
    def scenario_share(self) -> dict[int, float]:
        """Share of frauds per fraud scenario."""
        return {k: v / self.frauds for k, v in self.per_scenario.items()} if self.frauds else {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"scenario_share": self.scenario_share}


def summarize(transactions: pd.DataFrame, n_days: int) -> Summary:
    """Totals, per-scenario fraud counts and per-day transaction counts."""
    tx = transactions
    n = len(tx)
    frauds = int(tx[schema.TX_FRAUD].sum())
    per_day = tx[schema.TX_TIME_DAYS].value_counts().reindex(range(n_days), fill_value=0)
    fraud_tx = tx[tx[schema.TX_FRAUD] == 1]
    frauds_per_day = fraud_tx[schema.TX_TIME_DAYS].value_counts().reindex(range(n_days))
    per_scenario = fraud_tx[schema.TX_FRAUD_SCENARIO].value_counts().sort_index()
    injected = tx.loc[tx[schema.INJECTED] != "", schema.INJECTED].value_counts().sort_index()
    return Summary(
        transactions=n,
        frauds=frauds,
        fraud_rate=frauds / n if n else 0.0,
        days=n_days,
        tx_per_day_mean=float(per_day.mean()),
        tx_per_day_min=int(per_day.min()),
        tx_per_day_max=int(per_day.max()),
        frauds_per_day_mean=frauds / n_days,
        per_scenario={int(str(k)): int(v) for k, v in per_scenario.items()},
        per_injected={str(k): int(v) for k, v in injected.items()},
        per_day_transactions=[int(v) for v in per_day.tolist()],
        per_day_frauds=[int(v) for v in frauds_per_day.fillna(0).tolist()],
    )
