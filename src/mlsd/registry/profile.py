"""A version's reference profile: what its training data looked like, binned once.

Drift monitoring compares every window of the prediction log with the data the model
was trained on. Re-reading the training set for each comparison costs seconds per
window, so registration stores a summary instead, as the artifact `PROFILE_ARTIFACT`
(JSON, sha256-checked like every artifact):

- per numeric feature, the reference quantile cut points and the row count in each bin
  (drift metrics then need only a window's counts in the same bins);
- per categorical feature (few distinct values: flags, small counts), each value's count;
- missing rates (non-finite values), the score distribution in its own quantile bins and
  as 1,001 quantiles (a sample to calibrate streaming detectors on);
- a PCA of the standardised features with its reconstruction-error bins, for
  multivariate drift (a joint change no single feature shows);
- when labels of the scored rows are given, a calibration map (isotonic regression of the
  label on the score): what a label-free performance estimate (CBPE) reads.

A version registered before profiles existed has none: `load_profile` of nothing raises
`MissingProfileError`, an explicit "no reference profile" state, never a silent pass.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = np.column_stack([rng.normal(size=1000), rng.integers(0, 2, 1000)])
>>> p = build_profile(X, ["amount", "weekend"], scores=rng.uniform(size=1000))
>>> [f.kind for f in p.features], len(p.feature("amount").edges), p.feature("weekend").values
(['numeric', 'categorical'], 9, [0.0, 1.0])
>>> load_profile(profile_bytes(p)) == p
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from mlsd.errors import IntegrityError, NotFoundError, ValidationError

PROFILE_ARTIFACT = "reference_profile.json"
"""The artifact holding a version's `ReferenceProfile`."""
PROFILE_SCHEMA = 1
DEFAULT_BINS = 10
"""Deciles: the bins PSI's usual thresholds (0.1 moderate, 0.25 major) were set on."""
MAX_CATEGORIES = 20
"""A feature with at most this many distinct integer values is profiled as categorical."""
PCA_SAMPLE = 50_000
SCORE_QUANTILES = 1_001
PCA_VARIANCE = 0.9

Kind = Literal["numeric", "categorical"]


class MissingProfileError(NotFoundError):
    """The version has no reference profile (registered before profiles were stored)."""


class FeatureProfile(BaseModel):
    """One feature of the reference: its bins (numeric) or values (categorical) and counts.

    Numeric bin i holds edges[i-1] < x <= edges[i] (the first from -inf, the last to +inf),
    so `counts` has len(edges) + 1 entries. Categorical `counts[i]` counts `values[i]`;
    a value never seen in the reference falls into no bin (monitoring counts it apart).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: Kind
    n: int = Field(ge=0)
    missing: int = Field(ge=0)
    edges: list[float] = Field(default_factory=list)
    values: list[float] = Field(default_factory=list)
    counts: list[int]
    mean: float | None = None
    std: float | None = None

    @property
    def missing_rate(self) -> float:
        """Share of the reference rows where the feature was missing (non-finite)."""
        return self.missing / self.n if self.n else 0.0


class PcaProfile(BaseModel):
    """A PCA of the standardised reference, and its per-row reconstruction-error bins."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mean: list[float]
    scale: list[float]
    components: list[list[float]]
    """k x d orthonormal rows."""
    explained: float
    error: FeatureProfile


class CalibrationProfile(BaseModel):
    """score -> P(fraud), fitted by isotonic regression on labelled scored rows.

    The map is piecewise linear through (`scores[i]`, `probabilities[i]`) and constant
    outside them, exactly as scikit-learn's `IsotonicRegression(out_of_bounds="clip")`
    predicts; `calibrated` applies it with `np.interp`, so reading needs no scikit-learn.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scores: list[float]
    probabilities: list[float]
    n: int = Field(ge=1)
    positives: int = Field(ge=0)
    source: str = ""

    def calibrated(self, scores: NDArray[Any]) -> NDArray[np.float64]:
        """P(fraud) of each score."""
        x = np.asarray(scores, dtype=np.float64)
        out: NDArray[np.float64] = np.interp(x, self.scores, self.probabilities)
        return out


def fit_calibration(
    scores: NDArray[Any], labels: NDArray[Any], source: str = ""
) -> CalibrationProfile:
    """Isotonic calibration of `scores` against 0/1 `labels` (both classes needed).

    >>> cal = fit_calibration(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 0, 1, 1]))
    >>> cal.calibrated(np.array([0.0, 0.35, 1.0])).tolist()
    [0.0, 1.0, 1.0]
    """
    from sklearn.isotonic import IsotonicRegression

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if s.shape != y.shape or s.ndim != 1:
        raise ValidationError("one label per score is required", field="labels")
    keep = np.isfinite(s) & np.isfinite(y)
    s, y = s[keep], y[keep]
    if s.size == 0 or np.unique(y).size < 2:
        raise ValidationError("calibration needs both frauds and genuine rows", field="labels")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    return CalibrationProfile(
        scores=[float(v) for v in iso.X_thresholds_],
        probabilities=[float(v) for v in iso.y_thresholds_],
        n=int(s.size), positives=int(y.sum()), source=source,
    )  # fmt: skip


class ReferenceProfile(BaseModel):
    """Everything drift monitoring needs about a version's training data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = PROFILE_SCHEMA
    n_rows: int = Field(ge=1)
    source: str = ""
    features: list[FeatureProfile]
    score: FeatureProfile | None = None
    score_quantiles: list[float] = Field(default_factory=list)
    """`SCORE_QUANTILES` evenly spaced quantiles of the scores: a sample of their
    distribution for calibrating streaming detectors (empty in older profiles)."""
    pca: PcaProfile | None = None
    calibration: CalibrationProfile | None = None
    """score -> P(fraud) on the labelled scored rows (None: registered without labels)."""

    @property
    def feature_names(self) -> list[str]:
        """Profiled features, in model order."""
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureProfile:
        """One feature's profile (NotFoundError naming the feature)."""
        for f in self.features:
            if f.name == name:
                return f
        raise NotFoundError(f"the reference profile has no feature {name!r}", field="feature")


def quantile_edges(values: NDArray[np.float64], n_bins: int) -> NDArray[np.float64]:
    """Distinct interior quantile cut points (ties collapse bins: a constant gives none)."""
    if values.size == 0:
        return np.empty(0)
    qs = np.quantile(values, np.arange(1, n_bins) / n_bins, method="linear")
    edges: NDArray[np.float64] = np.unique(qs)
    kept: NDArray[np.float64] = edges[edges < values.max()]
    return kept  # a top edge at the max would leave the last bin empty


def bin_counts(values: NDArray[Any], edges: NDArray[np.float64]) -> NDArray[np.int64]:
    """Counts of finite `values` in the bins of `edges` (len(edges) + 1 bins)."""
    idx = np.searchsorted(edges, values, side="left")
    return np.bincount(idx, minlength=edges.size + 1).astype(np.int64)


def profile_column(
    name: str,
    column: NDArray[Any],
    *,
    n_bins: int = DEFAULT_BINS,
    max_categories: int = MAX_CATEGORIES,
    kind: Kind | None = None,
) -> FeatureProfile:
    """One column's profile; `kind` None decides: few distinct integers -> categorical."""
    x = np.asarray(column, dtype=np.float64)
    finite = x[np.isfinite(x)]
    missing = int(x.size - finite.size)
    distinct = np.unique(finite)
    if kind is None:
        few = distinct.size <= max_categories
        kind = "categorical" if few and np.all(distinct == np.round(distinct)) else "numeric"
    stats = {"mean": float(finite.mean()), "std": float(finite.std())} if finite.size else {}
    if kind == "categorical":
        counts = np.searchsorted(distinct, finite)
        return FeatureProfile(
            name=name, kind=kind, n=int(x.size), missing=missing,
            values=[float(v) for v in distinct],
            counts=np.bincount(counts, minlength=distinct.size).tolist(), **stats,
        )  # fmt: skip
    edges = quantile_edges(finite, n_bins)
    return FeatureProfile(
        name=name, kind=kind, n=int(x.size), missing=missing,
        edges=[float(e) for e in edges], counts=bin_counts(finite, edges).tolist(), **stats,
    )  # fmt: skip


def standardise(X: NDArray[Any], mean: NDArray[np.float64], scale: NDArray[np.float64]) -> Any:
    """(X - mean) / scale, missing values at the mean (0), as float32 for speed."""
    Z = (np.asarray(X, dtype=np.float32) - mean.astype(np.float32)) / scale.astype(np.float32)
    return np.nan_to_num(Z, nan=0.0, posinf=0.0, neginf=0.0)


def reconstruction_error(Z: NDArray[Any], components: NDArray[Any]) -> NDArray[np.float64]:
    """Per-row squared error of projecting onto the components: |z|^2 - |z W^T|^2."""
    W = components.astype(Z.dtype, copy=False)
    proj = Z @ W.T
    err = np.einsum("ij,ij->i", Z, Z) - np.einsum("ij,ij->i", proj, proj)
    out: NDArray[np.float64] = np.maximum(err, 0.0).astype(np.float64)
    return out


def profile_pca(X: NDArray[Any], *, n_bins: int, seed: int = 0) -> PcaProfile | None:
    """PCA keeping `PCA_VARIANCE` of the variance (None with fewer than 2 varying columns)."""
    rng = np.random.default_rng(seed)
    rows = X if len(X) <= PCA_SAMPLE else X[rng.choice(len(X), PCA_SAMPLE, replace=False)]
    rows = np.asarray(rows, dtype=np.float64)
    mean = np.nanmean(rows, axis=0) if rows.size else np.zeros(X.shape[1])
    mean = np.nan_to_num(mean)
    scale = np.nan_to_num(np.nanstd(rows, axis=0))
    if int((scale > 0).sum()) < 2 or len(rows) < 3:
        return None
    scale[scale == 0] = 1.0
    Z = standardise(rows, mean, scale).astype(np.float64)
    _, s, vt = np.linalg.svd(Z - Z.mean(axis=0), full_matrices=False)
    share = np.cumsum(s**2) / np.sum(s**2)
    k = int(min(np.searchsorted(share, PCA_VARIANCE) + 1, max(1, Z.shape[1] - 1)))
    components = vt[:k]
    error = profile_column(
        "pca_error", reconstruction_error(Z, components), n_bins=n_bins, kind="numeric"
    )
    return PcaProfile(
        mean=mean.tolist(), scale=scale.tolist(), components=components.tolist(),
        explained=float(share[k - 1]), error=error,
    )  # fmt: skip


def build_profile(
    X: NDArray[Any],
    feature_names: Sequence[str],
    *,
    scores: NDArray[Any] | None = None,
    labels: NDArray[Any] | None = None,
    n_bins: int = DEFAULT_BINS,
    max_categories: int = MAX_CATEGORIES,
    source: str = "",
) -> ReferenceProfile:
    """The reference profile of a feature matrix (rows x features, model order).

    `labels` (0/1, one per score) adds the calibration map of the scores; a set without
    both classes leaves it out (a calibration of one class says nothing).
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValidationError(
            f"a {X.shape} matrix does not match {len(feature_names)} feature names",
            field="features",
        )
    if len(X) == 0:
        raise ValidationError("cannot profile zero rows", field="features")
    if n_bins < 2:
        raise ValidationError("a profile needs at least 2 bins", field="n_bins")
    features = [
        profile_column(name, X[:, j], n_bins=n_bins, max_categories=max_categories)
        for j, name in enumerate(feature_names)
    ]
    score, quantiles = None, []
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64)
        score = profile_column("score", s, n_bins=n_bins, kind="numeric")
        s = s[np.isfinite(s)]
        if s.size:
            quantiles = np.quantile(s, np.linspace(0, 1, SCORE_QUANTILES)).tolist()
    return ReferenceProfile(
        n_rows=len(X),
        source=source,
        features=features,
        score=score,
        score_quantiles=quantiles,
        pca=profile_pca(X, n_bins=n_bins),
        calibration=_calibration(scores, labels, source),
    )


def _calibration(
    scores: NDArray[Any] | None, labels: NDArray[Any] | None, source: str
) -> CalibrationProfile | None:
    if scores is None or labels is None:
        return None
    y = np.asarray(labels, dtype=np.float64)
    if np.unique(y[np.isfinite(y)]).size < 2:
        return None
    return fit_calibration(np.asarray(scores), y, source)


def profile_bytes(profile: ReferenceProfile) -> bytes:
    """The profile as canonical JSON bytes (the artifact's content)."""
    return json.dumps(profile.model_dump(mode="json"), separators=(",", ":")).encode()


def load_profile(data: bytes | None, where: str = "the version") -> ReferenceProfile:
    """Parse an artifact's bytes; `None` (no artifact) is `MissingProfileError`."""
    if data is None:
        raise MissingProfileError(
            f"{where} has no reference profile (registered before profiles were stored); "
            "re-register or retrain it to monitor drift",
            field="profile",
        )
    try:
        return ReferenceProfile.model_validate_json(data)
    except ValueError as exc:
        raise IntegrityError(f"the reference profile of {where} is malformed: {exc}") from exc
