"""The mixture sequential probability ratio test (mSPRT) for an A/B difference, with
always-valid p-values (Johari, Koomen, Pekelis & Walsh, "Always valid inference", 2017).

A fixed-horizon test is valid once, at the sample size it was planned for; looking every
hour and stopping at the first p < 0.05 rejects a true null far more often than 5 %. The
mSPRT mixes the likelihood ratio of the observed difference over a normal prior
N(0, tau²) on the true difference; under the null that mixture is a martingale, so by
Ville's inequality it exceeds 1/alpha with probability at most alpha *ever*. The
always-valid p-value after n observations is min(1, 1 / max Λ so far): look as often as you
like, stop whenever it is below alpha.

With Δ̂ the observed difference (B − A) and v its variance estimate,

    Λ = sqrt(v / (v + tau²)) · exp(tau² Δ̂² / (2 v (v + tau²)))

(the normal-mixture ratio; for proportions v is pooled under the null of no difference,
for means v = s²_A/n_A + s²_B/n_B). `tau` should be of the order of the effect worth
detecting: much smaller and the test is slow on large effects, much larger and slow on
small ones.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mlsd.errors import ValidationError

Arm = Literal["A", "B"]
FloatArray = NDArray[np.float64]


def _tau2(tau: float) -> float:
    if not (tau > 0 and math.isfinite(tau)):
        raise ValidationError(f"tau must be a positive number, not {tau}", field="tau")
    return tau * tau


def log_mixture_ratio(delta: ArrayLike, variance: ArrayLike, tau: float) -> FloatArray:
    """log Λ of the normal-mixture SPRT for observed differences with these variances.

    Where the variance is 0 or undefined (no observation, or no event yet), log Λ = 0:
    no evidence either way.
    """
    t2 = _tau2(tau)
    d = np.asarray(delta, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    ok = np.isfinite(v) & (v > 0) & np.isfinite(d)
    safe = np.where(ok, v, 1.0)
    out = 0.5 * np.log(safe / (safe + t2)) + t2 * d * d / (2.0 * safe * (safe + t2))
    return np.where(ok, out, 0.0)


def always_valid_pvalues(log_ratio: ArrayLike) -> FloatArray:
    """min(1, 1 / running max Λ) along the last axis (the looks, in order)."""
    lr = np.maximum.accumulate(np.asarray(log_ratio, dtype=np.float64), axis=-1)
    return np.minimum(1.0, np.exp(-lr))


def proportion_log_ratios(
    successes_a: ArrayLike, n_a: ArrayLike, successes_b: ArrayLike, n_b: ArrayLike, tau: float
) -> FloatArray:
    """log Λ at each look from cumulative counts per arm (arrays of the same shape)."""
    sa, na = np.asarray(successes_a, np.float64), np.asarray(n_a, np.float64)
    sb, nb = np.asarray(successes_b, np.float64), np.asarray(n_b, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pa, pb = sa / na, sb / nb
        pooled = (sa + sb) / (na + nb)
        variance = pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)
    return log_mixture_ratio(pb - pa, variance, tau)


def proportion_pvalues(
    successes_a: ArrayLike, n_a: ArrayLike, successes_b: ArrayLike, n_b: ArrayLike, tau: float
) -> FloatArray:
    """Always-valid p-values at each look of an A/B test on a proportion.

    >>> import numpy as np
    >>> n = np.arange(1, 11) * 1000  # ten looks, 1,000 more per arm each time
    >>> p = proportion_pvalues(0.10 * n, n, 0.12 * n, n, tau=0.02)
    >>> bool(p[0] > 0.05), bool(p[-1] < 0.05), bool(np.all(np.diff(p) <= 0))
    (True, True, True)
    """
    return always_valid_pvalues(proportion_log_ratios(successes_a, n_a, successes_b, n_b, tau))


def mean_pvalues(
    mean_a: ArrayLike, var_a: ArrayLike, n_a: ArrayLike,
    mean_b: ArrayLike, var_b: ArrayLike, n_b: ArrayLike, tau: float,
) -> FloatArray:  # fmt: skip
    """Always-valid p-values at each look of an A/B test on a mean (running means and
    variances per arm)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.asarray(var_a, np.float64) / np.asarray(n_a, np.float64) + np.asarray(
            var_b, np.float64
        ) / np.asarray(n_b, np.float64)
    delta = np.asarray(mean_b, np.float64) - np.asarray(mean_a, np.float64)
    return always_valid_pvalues(log_mixture_ratio(delta, variance, tau))


class MSPRT:
    """A streaming mSPRT on two arms, in river's shape: `update(arm, x)`, `get()`,
    a read-only `rejected` flag.

    `kind="proportion"`: x is 0 or 1 (a block, a conversion); `kind="mean"`: any number
    (euros caught per transaction). Every update is a look: the p-value only ever falls.

    >>> test = MSPRT(tau=0.05, alpha=0.05)
    >>> for i in range(4000):
    ...     _ = test.update("A", i % 10 == 0).update("B", i % 5 == 0)  # 10 % vs 20 %
    >>> test.rejected, round(test.get(), 6) < 0.05
    (True, True)
    """

    def __init__(
        self, tau: float, alpha: float = 0.05, kind: Literal["proportion", "mean"] = "proportion"
    ) -> None:
        _tau2(tau)
        if not 0.0 < alpha < 1.0:
            raise ValidationError(f"alpha must be in (0, 1), not {alpha}", field="alpha")
        if kind not in ("proportion", "mean"):
            raise ValidationError(f"kind must be proportion or mean, not {kind!r}", field="kind")
        self.tau, self.alpha, self.kind = tau, alpha, kind
        self._n = {"A": 0, "B": 0}
        self._mean = {"A": 0.0, "B": 0.0}
        self._m2 = {"A": 0.0, "B": 0.0}  # Welford's sum of squared deviations
        self._max_log_ratio = 0.0

    def update(self, arm: Arm, x: float) -> MSPRT:
        """One observation on arm `arm` ('A' the control, 'B' the treatment)."""
        if arm not in self._n:
            raise ValidationError(f"arm must be 'A' or 'B', not {arm!r}", field="arm")
        value = float(x)
        if not math.isfinite(value):
            raise ValidationError("an observation must be a finite number", field="x")
        if self.kind == "proportion" and value not in (0.0, 1.0):
            raise ValidationError("a proportion test takes 0 or 1", field="x")
        self._n[arm] += 1
        delta = value - self._mean[arm]
        self._mean[arm] += delta / self._n[arm]
        self._m2[arm] += delta * (value - self._mean[arm])
        self._max_log_ratio = max(self._max_log_ratio, self.log_ratio)
        return self

    @property
    def log_ratio(self) -> float:
        """log Λ now (0 until both arms have data)."""
        na, nb = self._n["A"], self._n["B"]
        if na == 0 or nb == 0:
            return 0.0
        if self.kind == "proportion":
            ratio = proportion_log_ratios(self._mean["A"] * na, na, self._mean["B"] * nb, nb,
                                          self.tau)  # fmt: skip
            return float(ratio)
        if na < 2 or nb < 2:
            return 0.0
        variance = self._m2["A"] / (na - 1) / na + self._m2["B"] / (nb - 1) / nb
        return float(log_mixture_ratio(self._mean["B"] - self._mean["A"], variance, self.tau))

    @property
    def difference(self) -> float:
        """B's mean minus A's."""
        return self._mean["B"] - self._mean["A"]

    def get(self) -> float:
        """The always-valid p-value."""
        return min(1.0, math.exp(-self._max_log_ratio))

    @property
    def rejected(self) -> bool:
        """True once the p-value fell to alpha: the arms differ."""
        return self.get() <= self.alpha
