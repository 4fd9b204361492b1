"""Drift of one window against a version's reference profile: per feature, score, joint.

`compare(profile, window)` turns a `BinnedWindow` into a `DriftReport`: for each feature
PSI, KL, Jensen-Shannon, KS (numeric) or chi-squared (categorical) and the missing rates;
the same for the score distribution (prediction drift); and for the PCA reconstruction
error, which moves when the features' joint distribution does (a correlation broken,
say) even when no marginal moves. `drift(profile, X, scores)` is both steps at once.

Severity follows PSI's usual reading: below 0.1 stable, up to 0.25 moderate, above
major. p-values are reported but not used for severity: on a million rows any
difference is significant, PSI says whether it is large.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from mlsd.errors import ValidationError
from mlsd.monitoring import divergence as dv
from mlsd.monitoring.binning import BinnedWindow
from mlsd.registry.profile import FeatureProfile, ReferenceProfile

Severity = Literal["stable", "moderate", "major"]
MODERATE_PSI = 0.1
MAJOR_PSI = 0.25


def severity(psi: float) -> Severity:
    """PSI's conventional reading."""
    return "major" if psi > MAJOR_PSI else "moderate" if psi > MODERATE_PSI else "stable"


@dataclass(frozen=True)
class FeatureDrift:
    """One distribution's drift: a feature, the score, or the PCA reconstruction error."""

    name: str
    kind: str
    n: int
    psi: float
    kl: float
    js: float
    ks: float | None
    ks_pvalue: float | None
    chi2: float | None
    chi2_pvalue: float | None
    missing_ref: float
    missing_window: float
    unseen: int = 0
    """Window rows holding a category the reference never had (categorical only)."""

    @property
    def severity(self) -> Severity:
        """stable / moderate / major by PSI."""
        return severity(self.psi)


def distribution_drift(
    ref: FeatureProfile, counts: NDArray[np.int64], missing: int, unseen: int, n: int
) -> FeatureDrift:
    """Every metric of one distribution from its reference and window counts."""
    ref_counts = np.asarray(ref.counts, dtype=np.int64)
    win = counts
    if ref.kind == "categorical":  # unseen values as one more bin the reference never had
        ref_counts = np.append(ref_counts, 0)
        win = np.append(win, unseen)
    ks = ks_p = chi = chi_p = None
    if ref.kind == "numeric":
        ks, ks_p = dv.ks(ref_counts, win)
    else:
        chi, chi_p = dv.chi2(ref_counts, win)
    return FeatureDrift(
        name=ref.name, kind=ref.kind, n=int(win.sum()),
        psi=dv.psi(ref_counts, win), kl=dv.kl(ref_counts, win), js=dv.js(ref_counts, win),
        ks=ks, ks_pvalue=ks_p, chi2=chi, chi2_pvalue=chi_p,
        missing_ref=ref.missing_rate, missing_window=missing / n if n else 0.0, unseen=unseen,
    )  # fmt: skip


@dataclass(frozen=True)
class DriftReport:
    """A window's drift against one version's reference profile."""

    model: str
    version: int | None
    n_rows: int
    features: list[FeatureDrift]
    score: FeatureDrift | None = None
    multivariate: FeatureDrift | None = None
    start: datetime | None = None
    end: datetime | None = None
    notes: list[str] = field(default_factory=list)

    def ranked(self) -> list[FeatureDrift]:
        """Features, most drifted (by PSI) first."""
        return sorted(self.features, key=lambda f: f.psi, reverse=True)

    def drifted(self, level: Severity = "moderate") -> list[str]:
        """Names of the features at `level` or worse."""
        order = {"stable": 0, "moderate": 1, "major": 2}
        return [f.name for f in self.ranked() if order[f.severity] >= order[level]]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        out = asdict(self)
        for key in ("start", "end"):
            out[key] = None if out[key] is None else out[key].isoformat()
        return out


def compare(
    window: BinnedWindow,
    *,
    model: str = "",
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> DriftReport:
    """The drift report of a filled window (ValidationError when it is empty)."""
    if window.n == 0:
        raise ValidationError("the window holds no rows: nothing to compare", field="window")
    profile: ReferenceProfile = window.profile
    counts, missing, unseen = window.counts, window.missing, window.unseen
    features = [
        distribution_drift(ref, counts[j], int(missing[j]), int(unseen[j]), window.n)
        for j, ref in enumerate(profile.features)
    ]
    score = None
    if profile.score is not None and window.score_counts is not None and window.scored:
        score = distribution_drift(
            profile.score, window.score_counts, window.n - window.scored, 0, window.n
        )
    joint = None
    if profile.pca is not None and window.pca_counts is not None:
        joint = distribution_drift(profile.pca.error, window.pca_counts, 0, 0, window.n)
    return DriftReport(
        model=model, version=version, n_rows=window.n, features=features, score=score,
        multivariate=joint, start=start, end=end,
    )  # fmt: skip


def drift(
    profile: ReferenceProfile,
    X: NDArray[Any],
    scores: NDArray[Any] | None = None,
    **where: Any,
) -> DriftReport:
    """Bin `X` (rows x the profile's features) and its scores, then `compare`."""
    return compare(BinnedWindow(profile).add(X, scores), **where)
