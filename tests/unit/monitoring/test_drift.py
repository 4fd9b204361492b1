"""Binned drift: exact counts, metrics that match scipy, planted shifts found, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from mlsd.errors import ValidationError
from mlsd.monitoring import divergence as dv
from mlsd.monitoring.binning import BinnedWindow, column_counts
from mlsd.monitoring.drift import compare, drift
from mlsd.registry.profile import build_profile

NAMES = ["amount", "night", "count", "risk"]


def reference(n: int = 20_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.lognormal(3.0, 1.0, n),
            rng.integers(0, 2, n),
            rng.integers(0, 6, n),
            rng.normal(size=n),
        ]
    ).astype(np.float32)


@pytest.fixture(scope="module")
def profile():  # type: ignore[no-untyped-def]
    ref = reference()
    return build_profile(ref, NAMES, scores=np.random.default_rng(1).beta(1, 20, len(ref)))


def test_window_counts_match_a_per_column_searchsorted(profile) -> None:  # type: ignore[no-untyped-def]
    X = reference(50_000, seed=5)
    X[::97, 0] = np.nan
    X[::101, 3] = np.inf
    X[::103, 3] = -np.inf
    X[::89, 2] = 9  # a count the reference never had
    w = BinnedWindow(profile)
    for part in np.array_split(X, 7):  # batch by batch, as live scoring fills it
        w.add(part)
    assert w.n == len(X)
    for j, ref in enumerate(profile.features):
        counts, missing, unseen = column_counts(X[:, j], ref)
        assert w.counts[j].tolist() == counts.tolist()
        assert (int(w.missing[j]), int(w.unseen[j])) == (missing, unseen)
        assert int(w.counts[j].sum()) + missing + unseen == len(X)
    assert [f.kind for f in profile.features] == [
        "numeric",
        "categorical",
        "categorical",
        "numeric",
    ]


def test_same_distribution_is_stable_and_planted_shifts_are_found(profile) -> None:  # type: ignore[no-untyped-def]
    same = drift(profile, reference(30_000, seed=9))
    assert same.drifted() == []
    assert max(f.psi for f in same.features) < 0.01
    X = reference(30_000, seed=9)
    X[:, 0] *= 2.0  # amounts doubled
    X[:, 1] = (np.random.default_rng(3).random(len(X)) < 0.8).astype(np.float32)  # more nights
    shifted = drift(profile, X)
    assert shifted.drifted("major")[:2] in (["night", "amount"], ["amount", "night"])
    assert shifted.drifted() == shifted.drifted("major")
    amount = next(f for f in shifted.features if f.name == "amount")
    assert amount.ks is not None
    assert amount.ks > 0.1
    assert amount.ks_pvalue < 1e-6
    night = next(f for f in shifted.features if f.name == "night")
    assert night.chi2 is not None
    assert night.chi2_pvalue < 1e-6
    assert night.ks is None


def test_joint_drift_sees_a_broken_correlation_no_marginal_shows() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=20_000)
    ref = np.column_stack([a, a + 0.1 * rng.normal(size=20_000), rng.normal(size=20_000)])
    profile = build_profile(ref, ["a", "b", "c"])
    b = rng.normal(size=20_000)  # same marginals, correlation gone
    now = np.column_stack([b, rng.normal(size=20_000) * np.std(ref[:, 1]), rng.normal(size=20_000)])
    report = drift(profile, now)
    assert report.multivariate is not None
    assert max(f.psi for f in report.features) < 0.1
    assert report.multivariate.psi > 1.0


def test_score_drift(profile) -> None:  # type: ignore[no-untyped-def]
    X = reference(10_000, seed=2)
    calm = drift(profile, X, np.random.default_rng(4).beta(1, 20, len(X)))
    scared = drift(profile, X, np.random.default_rng(4).beta(2, 5, len(X)))
    assert calm.score is not None
    assert calm.score.severity == "stable"
    assert scared.score is not None
    assert scared.score.severity == "major"


def test_metrics_agree_with_scipy() -> None:
    rng = np.random.default_rng(0)
    ref, win = rng.integers(1, 500, 12), rng.integers(1, 500, 12)
    p, q = ref / ref.sum(), win / win.sum()
    # with large counts the half-count smoothing is negligible
    big_ref, big_win = ref * 10_000, win * 10_000
    assert dv.js(big_ref, big_win) == pytest.approx(
        distance.jensenshannon(p, q, base=2) ** 2, rel=1e-3
    )
    assert dv.kl(big_ref, big_win) == pytest.approx(stats.entropy(q, p), rel=1e-3)
    stat, pvalue = dv.chi2(ref, win)
    expected = stats.chi2_contingency(np.vstack([ref, win]), correction=False)
    assert stat == pytest.approx(expected.statistic)
    assert pvalue == pytest.approx(expected.pvalue)
    # KS on bins equals the exact KS of samples whose values are the bin indices
    a, b = np.repeat(np.arange(12), ref), np.repeat(np.arange(12), win)
    assert dv.ks(ref, win)[0] == pytest.approx(stats.ks_2samp(a, b).statistic)


def test_empty_bins_give_finite_values() -> None:
    for metric in (dv.psi, dv.kl, dv.js):
        assert np.isfinite(metric(np.array([100, 0, 0]), np.array([0, 0, 100])))


def test_bad_windows_are_refused(profile) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="no rows"):
        compare(BinnedWindow(profile))
    with pytest.raises(ValidationError, match="4 features"):
        BinnedWindow(profile).add(np.zeros((3, 5)))
    with pytest.raises(ValidationError, match="zero rows"):
        build_profile(np.zeros((0, 2)), ["a", "b"])
