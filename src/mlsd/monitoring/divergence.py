"""Drift metrics between two count vectors over the same bins (reference vs window).

All of them read counts only, so they cost microseconds whatever the window's size:

- PSI = sum (q - p) ln(q / p), the population stability index (0.1 moderate, 0.25 major);
- KL(q || p) in nats, and the Jensen-Shannon divergence in bits (symmetric, in [0, 1]);
- KS: the largest gap between the two cumulative distributions at the reference's bin
  edges (a lower bound of the exact two-sample KS statistic, with the asymptotic
  Kolmogorov p-value for the two sample sizes);
- chi-squared: the two-sample homogeneity test on the 2 x bins contingency table.

Proportions are smoothed by half a count per bin (so an empty bin gives a large, finite
divergence, never inf or NaN); KS and chi-squared use the raw counts.

>>> import numpy as np
>>> ref, same = np.array([100, 100, 100, 100]), np.array([25, 25, 25, 25])
>>> round(psi(ref, same), 6), round(ks(ref, same)[0], 6)
(0.0, 0.0)
>>> round(psi(ref, np.array([10, 10, 10, 70])), 3)
0.84
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special
from scipy import stats as sstats

SMOOTHING = 0.5


def proportions(counts: NDArray[Any], smoothing: float = SMOOTHING) -> NDArray[np.float64]:
    """Counts as proportions, each bin given `smoothing` extra counts."""
    c: NDArray[np.float64] = np.asarray(counts, dtype=np.float64) + smoothing
    out: NDArray[np.float64] = c / c.sum()
    return out


def psi(ref: NDArray[Any], win: NDArray[Any]) -> float:
    """Population stability index of `win` against `ref`."""
    p, q = proportions(ref), proportions(win)
    return float(np.sum((q - p) * np.log(q / p)))


def kl(ref: NDArray[Any], win: NDArray[Any]) -> float:
    """KL(window || reference), in nats."""
    p, q = proportions(ref), proportions(win)
    return float(np.sum(q * np.log(q / p)))


def js(ref: NDArray[Any], win: NDArray[Any]) -> float:
    """Jensen-Shannon divergence in bits: 0 identical, 1 disjoint."""
    p, q = proportions(ref), proportions(win)
    m = 0.5 * (p + q)
    return float(0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m)))


def ks(ref: NDArray[Any], win: NDArray[Any]) -> tuple[float, float]:
    """(KS statistic at the bin edges, asymptotic two-sample p-value)."""
    n, m = float(np.sum(ref)), float(np.sum(win))
    if n == 0 or m == 0:
        return 0.0, 1.0
    gap = np.abs(np.cumsum(ref) / n - np.cumsum(win) / m)
    d = float(gap.max())
    return d, float(special.kolmogorov(d * np.sqrt(n * m / (n + m))))


def chi2(ref: NDArray[Any], win: NDArray[Any]) -> tuple[float, float]:
    """(chi-squared statistic, p-value) of the two samples coming from one distribution."""
    table = np.vstack([np.asarray(ref, dtype=np.float64), np.asarray(win, dtype=np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or np.any(table.sum(axis=1) == 0):
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    return stat, float(sstats.chi2.sf(stat, table.shape[1] - 1))
