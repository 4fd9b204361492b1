"""Genuine transactions, all customers and days at once (handbook section 3.2.3, vectorised).

Per customer and day: Poisson(mean_nb_tx_per_day) transactions; time of day
~ N(43200 s, 20000 s), truncated to whole seconds and dropped outside (0, 86400);
amount ~ N(mean, std), a negative one redrawn from U(0, 2 mean), rounded to cents;
terminal uniform among the customer's available terminals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlsd.data.profiles import FloatArray, IntArray, Profiles

SECONDS_PER_DAY = 86_400
MEAN_TIME_OF_DAY = SECONDS_PER_DAY / 2
STD_TIME_OF_DAY = 20_000.0


@dataclass
class RawTransactions:
    """Column arrays of generated transactions, in generation order (not yet sorted)."""

    seconds: IntArray
    customer: IntArray
    terminal: IntArray
    amount: FloatArray

    def __len__(self) -> int:
        return len(self.seconds)

    @property
    def days(self) -> IntArray:
        return self.seconds // SECONDS_PER_DAY


def generate_transactions(
    profiles: Profiles, n_days: int, day_rate: FloatArray, rng: np.random.Generator
) -> RawTransactions:
    """Draw every customer's transactions for `n_days` days.

    `day_rate[d]` multiplies every customer's rate on day `d` (1.0 = the handbook).
    Customers without any terminal in reach make no transaction.
    """
    nb_terminals = profiles.nb_terminals
    rate = np.where(nb_terminals > 0, profiles.mean_nb_tx_per_day, 0.0)
    lam = day_rate[:, None] * rate[None, :]  # (n_days, n_customers)
    counts = rng.poisson(lam).ravel()
    total = int(counts.sum())
    cells = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    day = cells // profiles.n_customers
    customer = cells % profiles.n_customers
    del cells

    time_of_day = np.trunc(rng.normal(MEAN_TIME_OF_DAY, STD_TIME_OF_DAY, size=total))
    keep = (time_of_day > 0) & (time_of_day < SECONDS_PER_DAY)
    day, customer = day[keep], customer[keep]
    seconds = time_of_day[keep].astype(np.int64) + day * SECONDS_PER_DAY
    n = len(seconds)

    mean = profiles.mean_amount[customer]
    amount = rng.normal(mean, profiles.std_amount[customer])
    negative = amount < 0
    amount[negative] = rng.uniform(0.0, 2.0 * mean[negative])
    amount = np.round(amount, 2)

    pick = rng.integers(0, nb_terminals[customer], size=n, dtype=np.int64)
    terminal = profiles.terminals[profiles.offsets[customer] + pick]
    return RawTransactions(seconds=seconds, customer=customer, terminal=terminal, amount=amount)
