"""A one-sided sequential test that a rate exceeds a limit, with always-valid p-values.

Used by the shadow's dangerous-divergence rule: "the challenger approves more than
`max_rate` of what the champion blocks". Each champion block is a Bernoulli trial (did
the challenger approve it?); H0 is rate <= p0, H1 rate > p0. The statistic is a mixture
likelihood ratio: the Bernoulli likelihood ratio against p0, averaged over a Beta(a, b)
prior truncated to (p0, 1],

    Λ_n = [B(a+S, b+F) / B(a, b)] · [P(Beta(a+S, b+F) > p0) / P(Beta(a, b) > p0)]
          / (p0^S (1 − p0)^F)            (S approvals, F non-approvals so far).

Under any rate <= p0, each factor of the integrand has expectation <= 1, so Λ is a
nonnegative supermartingale and Ville's inequality bounds P(ever Λ >= 1/alpha) by alpha:
checking after every request keeps the false-alarm rate at alpha at most.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betaln
from scipy.stats import beta

from mlsd.errors import ValidationError


def _prior(p0: float, strength: float) -> tuple[float, float]:
    """Beta(a, b) with mean p0 and a + b = strength (truncated to (p0, 1] by the test)."""
    if not 0.0 < p0 < 1.0:
        raise ValidationError(f"the rate limit must be in (0, 1), not {p0}", field="max_rate")
    if not strength > 0:
        raise ValidationError(f"prior strength must be > 0, not {strength}", field="strength")
    return p0 * strength, (1.0 - p0) * strength


def rate_log_ratios(
    hits: ArrayLike, n: ArrayLike, p0: float, strength: float = 10.0
) -> NDArray[np.float64]:
    """log Λ for cumulative counts (`hits` of `n` trials, arrays of one shape)."""
    a, b = _prior(p0, strength)
    s = np.asarray(hits, dtype=np.float64)
    f = np.asarray(n, dtype=np.float64) - s
    if np.any(s < 0) or np.any(f < 0):
        raise ValidationError("need 0 <= hits <= n", field="hits")
    with np.errstate(divide="ignore"):
        mixture = betaln(a + s, b + f) - betaln(a, b)
        tail = beta.logsf(p0, a + s, b + f) - beta.logsf(p0, a, b)
        null = s * math.log(p0) + f * math.log1p(-p0)
    out: NDArray[np.float64] = mixture + tail - null
    return np.where(np.isfinite(out), out, -np.inf)


def rate_boundary(n_max: int, p0: float, alpha: float, strength: float = 10.0) -> NDArray[np.int64]:
    """The fewest hits that reject after each of n = 1..n_max trials (n + 1: none can).

    Λ grows with the hits at a fixed n (every θ of the prior is above p0), so a stream
    rejects at the first n where its hits reach this boundary: one binary search per n
    instead of a special function per trial and per stream, for simulations.

    >>> rate_boundary(6, p0=0.1, alpha=0.01).tolist()  # nothing before 5 of 5, then 6 of 6
    [2, 3, 4, 5, 5, 6]
    """
    if n_max < 1:
        raise ValidationError(f"n_max must be >= 1, not {n_max}", field="n_max")
    if not 0.0 < alpha < 1.0:
        raise ValidationError(f"alpha must be in (0, 1), not {alpha}", field="alpha")
    n = np.arange(1, n_max + 1, dtype=np.int64)
    lo, hi = np.zeros(n_max, dtype=np.int64), n + 1
    level = math.log(1.0 / alpha)
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        ok = (mid <= n) & (rate_log_ratios(np.minimum(mid, n), n, p0, strength) >= level)
        hi = np.where((lo < hi) & ok, mid, hi)
        lo = np.where((lo < hi) & ~ok, mid + 1, lo)
    return hi


class RateAboveTest:
    """Streaming "is the rate above p0?" test in river's shape: `update(hit)`, `get()` (the
    always-valid p-value), read-only `rejected`.

    >>> test = RateAboveTest(p0=0.10, alpha=0.01)
    >>> for i in range(400):  # a true rate of 25 %
    ...     _ = test.update(i % 4 == 0)
    ...     if test.rejected:
    ...         break
    >>> test.rejected, test.n
    (True, 53)
    >>> quiet = RateAboveTest(p0=0.10, alpha=0.01)
    >>> for i in range(2000):  # 5 %: never
    ...     _ = quiet.update(i % 20 == 0)
    >>> quiet.rejected
    False
    """

    def __init__(self, p0: float, alpha: float = 0.01, strength: float = 10.0) -> None:
        _prior(p0, strength)
        if not 0.0 < alpha < 1.0:
            raise ValidationError(f"alpha must be in (0, 1), not {alpha}", field="alpha")
        self.p0, self.alpha, self.strength = p0, alpha, strength
        self.n = 0
        self.hits = 0
        self._max_log_ratio = -math.inf

    def update(self, hit: bool) -> RateAboveTest:
        """One trial."""
        return self.update_counts(int(bool(hit)), 1)

    def update_counts(self, hits: int, n: int) -> RateAboveTest:
        """`hits` of `n` more trials at once (one look)."""
        if n < 0 or not 0 <= hits <= n:
            raise ValidationError(f"need 0 <= hits <= n, got {hits} of {n}", field="hits")
        self.n += n
        self.hits += hits
        self._max_log_ratio = max(self._max_log_ratio, self.log_ratio)
        return self

    @property
    def log_ratio(self) -> float:
        """log Λ now."""
        return float(rate_log_ratios(self.hits, self.n, self.p0, self.strength))

    def get(self) -> float:
        """The always-valid p-value: min(1, 1 / max Λ so far)."""
        return min(1.0, math.exp(-self._max_log_ratio)) if self.n else 1.0

    @property
    def rejected(self) -> bool:
        """True once the p-value fell to alpha: the rate is above p0."""
        return self.get() <= self.alpha
