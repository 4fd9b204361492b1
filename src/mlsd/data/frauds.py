"""The handbook's three fraud scenarios (section 3.2.4), vectorised.

1. Every amount above the threshold (220) is fraud.
2. Each day, 2 random terminals are compromised: all their transactions in the next
   28 days (the day itself included) are fraud.
3. Each day, 3 random customers are compromised: for the next 14 days a third of their
   transactions (exactly floor(n/3) of that window, drawn at random) get amount x5 and
   are fraud. A transaction drawn by two overlapping compromises is multiplied twice,
   as in the handbook's loop.

Later scenarios override the tag of earlier ones (1, then 2, then 3), as in the handbook.
The compromised terminals and customers of each day are drawn with a per-day loop
(a few hundred tiny draws); everything touching transactions is one array operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlsd.data.profiles import IntArray

GENUINE = 0
AMOUNT_SCENARIO = 1
TERMINAL_SCENARIO = 2
CUSTOMER_SCENARIO = 3
CUSTOMER_AMOUNT_FACTOR = 5.0


def spread(rate: float, n_days: int) -> IntArray:
    """Whole counts per day averaging `rate`: day d gets floor((d+1) rate) - floor(d rate)."""
    cumulative = np.floor(np.arange(n_days + 1) * rate + 1e-9).astype(np.int64)
    counts: IntArray = np.diff(cumulative)
    return counts


@dataclass(frozen=True)
class Compromises:
    """Who was compromised on which day: `ids[i]` on day `days[i]`."""

    days: IntArray
    ids: IntArray

    @classmethod
    def draw(cls, per_day: Sequence[int], population: int, rng: np.random.Generator) -> Compromises:
        """Draw `per_day[d]` distinct ids out of `population` for each day `d`.

        A day asking for more ids than the population compromises all of them.
        """
        picks = [
            rng.choice(population, size=min(int(k), population), replace=False) for k in per_day
        ]
        counts = np.array([len(p) for p in picks], dtype=np.int64)
        days = np.repeat(np.arange(len(per_day), dtype=np.int64), counts)
        ids = np.concatenate(picks).astype(np.int64) if picks else np.empty(0, np.int64)
        return cls(days=days, ids=ids)

    def select(self, mask: npt.NDArray[np.bool_]) -> Compromises:
        return Compromises(days=self.days[mask], ids=self.ids[mask])

    def window_keys(self, duration: int, n_days: int) -> tuple[IntArray, IntArray]:
        """Keys `id * n_days + day` covered by each compromise, and the compromise index."""
        offsets = np.arange(duration, dtype=np.int64)
        day = self.days[:, None] + offsets[None, :]
        keys = self.ids[:, None] * n_days + day
        owner = np.broadcast_to(np.arange(len(self.ids))[:, None], day.shape)
        inside = day < n_days
        return keys[inside], owner[inside]


def covered(
    ids: IntArray, days: IntArray, compromises: Compromises, duration: int, n_days: int
) -> npt.NDArray[np.bool_]:
    """Which transactions (`ids`, `days`) fall inside any compromise window."""
    keys, _ = compromises.window_keys(duration, n_days)
    return np.isin(ids * n_days + days, keys)


def customer_fraud_draws(
    customer: IntArray,
    days: IntArray,
    compromises: Compromises,
    duration: int,
    n_days: int,
    rng: np.random.Generator,
) -> IntArray:
    """How many times each transaction is drawn as a scenario-3 fraud (0 for most).

    For each compromise, floor(n/3) of the n transactions of that customer inside the
    window are drawn without replacement.
    """
    keys, owner = compromises.window_keys(duration, n_days)
    tx_keys = customer * n_days + days
    candidates = np.flatnonzero(np.isin(tx_keys, keys))
    pairs = pd.DataFrame({"key": tx_keys[candidates], "tx": candidates}).merge(
        pd.DataFrame({"key": keys, "owner": owner}), on="key", how="inner", sort=False
    )
    pairs = pairs.sort_values(["owner", "tx"], kind="stable")
    owner_of = pairs["owner"].to_numpy(dtype=np.int64)
    tx_of = pairs["tx"].to_numpy(dtype=np.int64)
    order = np.lexsort((rng.random(len(owner_of)), owner_of))
    owner_of, tx_of = owner_of[order], tx_of[order]
    sizes = np.bincount(owner_of, minlength=len(compromises.ids))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank = np.arange(len(owner_of)) - starts[owner_of]
    chosen = rank < sizes[owner_of] // 3
    return np.bincount(tx_of[chosen], minlength=len(customer)).astype(np.int64)
