"""Two-sample distances between score (or feature) distributions: PSI and KS.

Shared by the rollout analysis (challenger's scores against the champion's on the same
requests) and monitoring (today's scores against a reference profile). PSI bins on the
reference's quantiles, so each bin holds about the same share of the reference and the
index does not depend on where a fixed grid happens to cut a skewed score distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import ks_2samp

from mlsd.errors import ValidationError

#: The share given to an empty bin, so that log(0) never happens (a common choice).
EMPTY_BIN = 1e-4


def finite_values(values: ArrayLike, field: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValidationError(f"{field}: no values", field=field)
    if not np.isfinite(array).all():
        raise ValidationError(f"{field}: NaN or infinite values", field=field)
    return array


def quantile_edges(reference: ArrayLike, bins: int = 10) -> NDArray[np.float64]:
    """Inner bin edges at the reference's quantiles (duplicates merged: a discrete or
    mostly-zero reference gets fewer bins, never empty ones by construction)."""
    if bins < 2:
        raise ValidationError(f"bins must be >= 2, not {bins}", field="bins")
    ref = finite_values(reference, "reference")
    inner = np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(inner)


def psi(reference: ArrayLike, current: ArrayLike, bins: int = 10) -> float:
    """Population stability index of `current` against `reference`.

    Sum over bins of (c − r)·ln(c / r), bins at the reference's deciles by default.
    Rules of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.

    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=20_000)
    >>> psi(ref, rng.normal(size=20_000)) < 0.01  # the same distribution
    True
    >>> round(psi(ref, rng.normal(0.5, 1.0, size=20_000)), 2)  # half a sd shift
    0.23
    """
    ref = finite_values(reference, "reference")
    cur = finite_values(current, "current")
    edges = quantile_edges(ref, bins)
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    rs = np.maximum(r / ref.size, EMPTY_BIN)
    cs = np.maximum(c / cur.size, EMPTY_BIN)
    return float(np.sum((cs - rs) * np.log(cs / rs)))


@dataclass(frozen=True)
class KS:
    """The two-sample Kolmogorov-Smirnov statistic (largest gap between the two empirical
    CDFs) and its p-value under "same distribution"."""

    statistic: float
    pvalue: float


def ks(reference: ArrayLike, current: ArrayLike) -> KS:
    """Two-sample KS test (scipy's `ks_2samp`, two-sided).

    >>> rng = np.random.default_rng(0)
    >>> k = ks(rng.normal(size=2000), rng.normal(0.3, 1.0, size=2000))
    >>> round(k.statistic, 2), k.pvalue < 1e-6
    (0.13, True)
    """
    result = ks_2samp(finite_values(reference, "reference"), finite_values(current, "current"))
    return KS(float(result.statistic), float(result.pvalue))
