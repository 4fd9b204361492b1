"""PSI and KS: zero on identical samples, growing with the shift, refusing bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.errors import ValidationError
from mlsd.stats import ks, psi, quantile_edges


def test_psi_grows_with_the_shift_and_is_zero_on_the_same_sample() -> None:
    rng = np.random.default_rng(1)
    ref = rng.beta(1, 30, size=10_000)  # a skewed score distribution, like fraud scores
    assert psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    values = [psi(ref, np.clip(ref * f, 0, 1)) for f in (1.0, 1.2, 1.5, 2.0)]
    assert values == sorted(values)
    assert values[-1] > 0.25  # doubling every score: a major shift


def test_a_mostly_constant_reference_gets_fewer_bins_not_a_crash() -> None:
    ref = np.r_[np.zeros(950), np.linspace(0.1, 1, 50)]
    assert len(quantile_edges(ref, 10)) < 9
    assert np.isfinite(psi(ref, np.zeros(100)))


def test_ks_matches_scipy_and_bad_input_is_refused() -> None:
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=500), rng.normal(0.2, 1, size=700)
    assert ks(a, b).statistic == pytest.approx(ks_2samp(a, b).statistic)
    with pytest.raises(ValidationError, match="current"):
        psi(a, [np.nan])
    with pytest.raises(ValidationError, match="reference"):
        ks([], b)
