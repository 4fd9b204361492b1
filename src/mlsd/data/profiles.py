"""Customer and terminal profiles on a 100x100 grid (handbook sections 3.2.1-3.2.3).

Each customer uses the terminals strictly within `radius` of its location. The
neighbourhoods are found with a KD-tree and stored flat (CSR style): the terminals of
customer `c` are `terminals[offsets[c]:offsets[c + 1]]`, sorted by id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlsd.data import schema

GRID_SIZE = 100.0

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Profiles:
    """Customer and terminal properties as arrays, plus each customer's terminals."""

    customer_xy: FloatArray
    mean_amount: FloatArray
    std_amount: FloatArray
    mean_nb_tx_per_day: FloatArray
    terminal_xy: FloatArray
    offsets: IntArray  # len n_customers + 1
    terminals: IntArray  # concatenated available terminal ids

    @property
    def n_customers(self) -> int:
        return len(self.mean_amount)

    @property
    def n_terminals(self) -> int:
        return len(self.terminal_xy)

    @property
    def nb_terminals(self) -> IntArray:
        """How many terminals each customer can use."""
        return np.diff(self.offsets)

    def customers_frame(self) -> pd.DataFrame:
        """The customer profile table (handbook column names)."""
        split = np.split(self.terminals, self.offsets[1:-1])
        return pd.DataFrame(
            {
                schema.CUSTOMER_ID: np.arange(self.n_customers, dtype=np.int64),
                "x_customer_id": self.customer_xy[:, 0],
                "y_customer_id": self.customer_xy[:, 1],
                "mean_amount": self.mean_amount,
                "std_amount": self.std_amount,
                "mean_nb_tx_per_day": self.mean_nb_tx_per_day,
                "available_terminals": [part.tolist() for part in split],
                "nb_terminals": self.nb_terminals,
            }
        )

    def terminals_frame(self) -> pd.DataFrame:
        """The terminal profile table (handbook column names)."""
        return pd.DataFrame(
            {
                schema.TERMINAL_ID: np.arange(self.n_terminals, dtype=np.int64),
                "x_terminal_id": self.terminal_xy[:, 0],
                "y_terminal_id": self.terminal_xy[:, 1],
            }
        )


def neighbourhoods(
    customer_xy: FloatArray, terminal_xy: FloatArray, radius: float
) -> tuple[IntArray, IntArray]:
    """CSR offsets and terminal ids of the terminals strictly within `radius` of each customer.

    Grid bucketing in numpy: terminals are sorted by square cell of side `radius`; each
    customer's candidates are the terminals of the 3x3 cells around its own, then the
    exact distance test keeps those strictly closer than `radius` (as the handbook does).
    """
    n_customers = len(customer_xy)
    side = max(1, int(np.ceil(GRID_SIZE / radius)))
    t_cell = np.minimum((terminal_xy // radius).astype(np.int64), side - 1)
    t_key = t_cell[:, 0] * side + t_cell[:, 1]
    by_cell = np.argsort(t_key, kind="stable")
    sorted_keys = t_key[by_cell]
    c_cell = np.minimum((customer_xy // radius).astype(np.int64), side - 1)
    owners, candidates = [], []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            cx, cy = c_cell[:, 0] + dx, c_cell[:, 1] + dy
            valid = (cx >= 0) & (cx < side) & (cy >= 0) & (cy < side)
            key = np.where(valid, cx * side + cy, -1)
            lo = np.searchsorted(sorted_keys, key, side="left")
            hi = np.searchsorted(sorted_keys, key, side="right")
            counts = np.where(valid, hi - lo, 0)
            owner = np.repeat(np.arange(n_customers, dtype=np.int64), counts)
            starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
            owners.append(owner)
            candidates.append(by_cell[starts + np.arange(len(owner))])
    owner = np.concatenate(owners)
    flat = np.concatenate(candidates).astype(np.int64)
    dist = np.sqrt(((customer_xy[owner] - terminal_xy[flat]) ** 2).sum(axis=1))
    keep = dist < radius
    owner, flat = owner[keep], flat[keep]
    order = np.lexsort((flat, owner))
    offsets = np.zeros(n_customers + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n_customers), out=offsets[1:])
    return offsets, flat[order]


def generate_profiles(
    n_customers: int, n_terminals: int, radius: float, rng: np.random.Generator
) -> Profiles:
    """Draw customers (location, spending, rate) and terminals (location) uniformly."""
    customer_xy = rng.uniform(0.0, GRID_SIZE, size=(n_customers, 2))
    mean_amount = rng.uniform(5.0, 100.0, size=n_customers)
    mean_nb = rng.uniform(0.0, 4.0, size=n_customers)
    terminal_xy = rng.uniform(0.0, GRID_SIZE, size=(n_terminals, 2))
    offsets, terminals = neighbourhoods(customer_xy, terminal_xy, radius)
    return Profiles(
        customer_xy=customer_xy,
        mean_amount=mean_amount,
        std_amount=mean_amount / 2.0,
        mean_nb_tx_per_day=mean_nb,
        terminal_xy=terminal_xy,
        offsets=offsets,
        terminals=terminals,
    )
