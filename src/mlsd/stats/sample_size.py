"""How many requests, and how long, an A/B test needs to see a minimum detectable effect:
the fixed-horizon plan (and the z-test it plans for), and the mSPRT's duration.

A fixed-horizon test is read once, at `n` per arm; `n` comes from the usual normal
approximation for two proportions (variance pooled under the null, Fleiss without
continuity correction). The mSPRT has no single `n`: it stops when the evidence is there,
so its duration is a distribution, found here by simulating the test at the effect
(hourly looks, vectorised over runs).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm

from mlsd.errors import ValidationError
from mlsd.stats.msprt import proportion_pvalues


def _rates(baseline: float, mde: float) -> tuple[float, float]:
    if not 0.0 < baseline < 1.0:
        raise ValidationError(f"baseline must be in (0, 1), not {baseline}", field="baseline")
    if mde == 0 or not math.isfinite(mde) or not 0.0 < baseline + mde < 1.0:
        raise ValidationError(
            f"mde must be a nonzero difference keeping baseline + mde in (0, 1), not {mde}",
            field="mde",
        )
    return baseline, baseline + mde


def _level(alpha: float, power: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValidationError(f"alpha must be in (0, 1), not {alpha}", field="alpha")
    if not 0.0 < power < 1.0:
        raise ValidationError(f"power must be in (0, 1), not {power}", field="power")


def fixed_horizon_n(
    baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8, two_sided: bool = True
) -> int:
    """Requests per arm for a z-test of two proportions to detect `baseline` → `baseline +
    mde` (absolute) with this power.

    Fleiss (no continuity correction) gives 294 per arm for 20 % vs 30 %:

    >>> fixed_horizon_n(0.20, 0.10)
    294
    >>> fixed_horizon_n(0.01, 0.001)  # 1 % of transactions blocked, +0.1 point
    163095
    """
    _level(alpha, power)
    p1, p2 = _rates(baseline, mde)
    z_a = float(norm.ppf(1 - alpha / 2 if two_sided else 1 - alpha))
    z_b = float(norm.ppf(power))
    pooled = (p1 + p2) / 2
    root = z_a * math.sqrt(2 * pooled * (1 - pooled)) + z_b * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil(root * root / (mde * mde))


def z_test_pvalues(
    successes_a: ArrayLike, n_a: ArrayLike, successes_b: ArrayLike, n_b: ArrayLike
) -> NDArray[np.float64]:
    """Two-sided pooled z-test p-values (valid at ONE planned look; peeking breaks them).

    >>> round(float(z_test_pvalues(100, 1000, 130, 1000)), 4)
    0.0355
    """
    sa, na = np.asarray(successes_a, np.float64), np.asarray(n_a, np.float64)
    sb, nb = np.asarray(successes_b, np.float64), np.asarray(n_b, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (sa + sb) / (na + nb)
        se = np.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
        z = (sb / nb - sa / na) / se
    p = 2.0 * norm.sf(np.abs(z))
    return np.where(np.isfinite(p), p, 1.0)


@dataclass(frozen=True)
class Plan:
    """What a test of `baseline` → `baseline + mde` needs at `per_hour` requests per arm."""

    baseline: float
    mde: float
    alpha: float
    power: float
    per_hour: float
    fixed_n_per_arm: int
    fixed_hours: float
    #: mSPRT, simulated at the effect: share of runs that stopped within `horizon_hours`,
    #: and the median / 80th-percentile hours to stop (NaN when fewer runs stopped).
    msprt_tau: float
    horizon_hours: int
    msprt_power: float
    msprt_median_hours: float
    msprt_p80_hours: float
    runs: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def simulate_counts(
    p_a: float, p_b: float, per_hour: int, hours: int, runs: int, rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Cumulative successes per arm and requests per arm at each hourly look (runs × hours)."""
    sa = rng.binomial(per_hour, p_a, size=(runs, hours)).cumsum(axis=1)
    sb = rng.binomial(per_hour, p_b, size=(runs, hours)).cumsum(axis=1)
    n = np.broadcast_to(np.arange(1, hours + 1, dtype=np.int64) * per_hour, (runs, hours))
    return sa, sb, np.ascontiguousarray(n)


def first_look(rejects: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Hour (1-based) of each run's first rejection; NaN for runs that never rejected."""
    hit = rejects.any(axis=1)
    first = rejects.argmax(axis=1).astype(np.float64) + 1.0
    return np.where(hit, first, np.nan)


def plan(
    baseline: float,
    mde: float,
    per_hour: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    tau: float | None = None,
    horizon_factor: float = 3.0,
    runs: int = 500,
    seed: int = 0,
) -> Plan:
    """The fixed-horizon plan, and the mSPRT simulated at the effect over `horizon_factor`
    times the fixed horizon (`tau` defaults to the mde).

    >>> p = plan(0.01, 0.002, per_hour=2000, runs=200)
    >>> p.fixed_n_per_arm, round(p.fixed_hours, 1)
    (42693, 21.3)
    >>> p.msprt_power > 0.8, p.msprt_median_hours > 10
    (True, True)
    """
    _level(alpha, power)
    _rates(baseline, mde)
    if not per_hour >= 1:
        raise ValidationError(f"per_hour must be >= 1 request, not {per_hour}", field="per_hour")
    if runs < 1 or horizon_factor <= 0:
        raise ValidationError("runs must be >= 1 and horizon_factor > 0", field="runs")
    n = fixed_horizon_n(baseline, mde, alpha, power)
    hours = n / per_hour
    horizon = max(1, math.ceil(hours * horizon_factor))
    tau_used = abs(mde) if tau is None else tau
    rng = np.random.default_rng(seed)
    sa, sb, counts = simulate_counts(baseline, baseline + mde, round(per_hour), horizon, runs, rng)
    stops = first_look(proportion_pvalues(sa, counts, sb, counts, tau_used) <= alpha)
    share = float(np.isfinite(stops).mean())
    never = np.where(np.isfinite(stops), stops, np.inf)  # a run that never stopped: last
    median = float(np.quantile(never, 0.5, method="inverted_cdf")) if share >= 0.5 else math.nan
    p80 = float(np.quantile(never, 0.8, method="inverted_cdf")) if share >= 0.8 else math.nan
    return Plan(
        baseline, mde, alpha, power, float(per_hour), n, hours, tau_used, horizon,
        share, median, p80, runs,
    )  # fmt: skip
