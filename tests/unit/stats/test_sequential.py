"""The sequential tests keep their false-positive rate under continuous looks, unlike a
fixed-horizon z-test peeked at; and they find real effects."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mlsd.errors import ValidationError
from mlsd.stats import (
    MSPRT,
    RateAboveTest,
    proportion_pvalues,
    rate_boundary,
    rate_log_ratios,
    z_test_pvalues,
)
from mlsd.stats.sample_size import first_look, simulate_counts


def test_peeking_a_z_test_inflates_false_positives_and_the_msprt_does_not() -> None:
    rng = np.random.default_rng(3)
    sa, sb, n = simulate_counts(0.05, 0.05, per_hour=500, hours=100, runs=1000, rng=rng)
    peeked = np.isfinite(first_look(z_test_pvalues(sa, n, sb, n) < 0.05)).mean()
    msprt = np.isfinite(first_look(proportion_pvalues(sa, n, sb, n, tau=0.01) <= 0.05)).mean()
    assert peeked > 0.15  # about 4x the nominal 5 %
    assert msprt < 0.05


def test_the_msprt_finds_a_real_difference() -> None:
    rng = np.random.default_rng(4)
    sa, sb, n = simulate_counts(0.05, 0.06, per_hour=1000, hours=100, runs=300, rng=rng)
    power = np.isfinite(first_look(proportion_pvalues(sa, n, sb, n, tau=0.01) <= 0.05)).mean()
    assert power > 0.8


def test_streaming_msprt_on_means_and_its_p_value_never_rises() -> None:
    rng = np.random.default_rng(5)
    test = MSPRT(tau=0.5, kind="mean")
    seen = []
    for x, y in zip(rng.normal(10, 2, 3000), rng.normal(10.4, 2, 3000), strict=True):
        test.update("A", x).update("B", y)
        seen.append(test.get())
    assert all(b <= a for a, b in itertools.pairwise(seen))
    assert test.rejected
    assert test.difference == pytest.approx(0.4, abs=0.15)


def test_the_rate_test_keeps_its_alpha_at_the_limit_checked_after_every_trial() -> None:
    rng = np.random.default_rng(6)
    edge = rate_boundary(5000, p0=0.1, alpha=0.05)
    hits = (rng.random((2000, 5000)) < 0.1).cumsum(axis=1)  # the rate exactly at p0
    false_alarms = (hits >= edge).any(axis=1).mean()
    assert false_alarms < 0.05  # 2,000 runs: a true 5 % would show 0.05 +- 0.005
    below = (rng.random((500, 5000)) < 0.05).cumsum(axis=1)  # well under: almost never
    assert (below >= edge).any(axis=1).mean() < 0.01
    above = (rng.random((500, 5000)) < 0.15).cumsum(axis=1)  # 15 % against 10 %: found
    assert (above >= edge).any(axis=1).mean() > 0.95


def test_bad_arguments_are_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        MSPRT(tau=0)
    assert info.value.field == "tau"
    with pytest.raises(ValidationError, match="arm"):
        MSPRT(tau=0.1).update("C", 1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="0 or 1"):
        MSPRT(tau=0.1).update("A", 0.5)
    with pytest.raises(ValidationError) as info:
        RateAboveTest(p0=1.5)
    assert info.value.field == "max_rate"
    with pytest.raises(ValidationError):
        RateAboveTest(p0=0.1).update_counts(3, 2)


def test_the_rejection_boundary_is_where_the_ratio_crosses() -> None:
    import math

    n = np.arange(1, 401)
    edge = rate_boundary(400, p0=0.2, alpha=0.05)
    level = math.log(1 / 0.05)
    can = edge <= n
    assert can[-1]
    assert not can[0]
    assert np.all(rate_log_ratios(edge[can], n[can], 0.2) >= level)
    assert np.all(rate_log_ratios(edge[can] - 1, n[can], 0.2) < level)
    assert np.all(np.diff(edge[can]) >= 0)
