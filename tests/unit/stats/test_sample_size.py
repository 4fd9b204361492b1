"""The fixed-horizon n gives the power it promises; the plan's figures hang together."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.errors import ValidationError
from mlsd.stats import fixed_horizon_n, plan, z_test_pvalues


def test_the_planned_n_has_the_planned_power() -> None:
    n = fixed_horizon_n(0.05, 0.01, power=0.8)
    rng = np.random.default_rng(7)
    a = rng.binomial(n, 0.05, size=4000)
    b = rng.binomial(n, 0.06, size=4000)
    power = (z_test_pvalues(a, n, b, n) < 0.05).mean()
    assert power == pytest.approx(0.8, abs=0.025)


def test_a_smaller_effect_needs_more_and_one_sided_needs_less() -> None:
    assert fixed_horizon_n(0.05, 0.005) > 3.5 * fixed_horizon_n(0.05, 0.01)
    assert fixed_horizon_n(0.05, 0.01, two_sided=False) < fixed_horizon_n(0.05, 0.01)
    assert fixed_horizon_n(0.05, -0.01) > 0  # a drop is planned the same way


def test_plan_durations() -> None:
    p = plan(0.05, 0.01, per_hour=500, runs=200)
    assert p.fixed_hours == pytest.approx(p.fixed_n_per_arm / 500)
    assert p.msprt_power >= 0.8
    assert p.msprt_median_hours <= p.msprt_p80_hours <= p.horizon_hours


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"baseline": 0.0}, "baseline"), ({"mde": 0.0}, "mde"), ({"mde": 0.99}, "mde"),
     ({"alpha": 1.0}, "alpha"), ({"per_hour": 0}, "per_hour")],
)  # fmt: skip
def test_nonsense_is_refused_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    args = {"baseline": 0.05, "mde": 0.01, "per_hour": 100.0, **kwargs}
    with pytest.raises(ValidationError) as info:
        plan(**args)  # type: ignore[arg-type]
    assert info.value.field == field
