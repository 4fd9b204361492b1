"""A window's counts in the bins of a reference profile: the only pass over the rows.

Every drift metric (`mlsd.monitoring.divergence`) needs only two count vectors per
feature: the reference's, stored at registration, and the window's in the same bins.
`BinnedWindow.add` is that one vectorised pass (a `searchsorted` and a `bincount` per
column), so a window can also be filled batch by batch as live scoring goes on.

>>> import numpy as np
>>> from mlsd.registry.profile import build_profile
>>> rng = np.random.default_rng(1)
>>> profile = build_profile(rng.normal(size=(500, 2)), ["a", "b"])
>>> w = BinnedWindow(profile).add(np.array([[0.0, np.nan], [9.0, 0.1]]))
>>> w.n, w.missing.tolist(), int(w.counts[0].sum())
(2, [0, 1], 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlsd.errors import ValidationError
from mlsd.registry.profile import (
    FeatureProfile,
    ReferenceProfile,
    reconstruction_error,
)

Counts = NDArray[np.int64]


def column_counts(column: NDArray[Any], ref: FeatureProfile) -> tuple[Counts, int, int]:
    """(counts in `ref`'s bins, missing, unseen categories) of one column."""
    missing_mask = ~np.isfinite(column)
    missing = int(missing_mask.sum())
    if ref.kind == "numeric":
        edges = np.asarray(ref.edges, dtype=column.dtype)
        idx = np.searchsorted(edges, column, side="left")  # NaN sorts last
        counts = np.bincount(idx, minlength=edges.size + 1).astype(np.int64)
        if missing:  # NaN and +inf land in the last bin, -inf in the first
            counts[-1] -= int(np.count_nonzero(np.isnan(column) | (column == np.inf)))
            counts[0] -= int(np.count_nonzero(column == -np.inf))
        return counts, missing, 0
    values = np.asarray(ref.values, dtype=column.dtype)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64), missing, int(column.size - missing)
    idx = np.minimum(np.searchsorted(values, column), values.size - 1)
    seen = values[idx] == column
    counts = np.bincount(idx[seen], minlength=values.size).astype(np.int64)
    return counts, missing, int(column.size - missing - int(seen.sum()))


CHUNK_ROWS = 16_384
"""Rows per pass: a chunk of 30 float32 features (2 MB) stays in cache for every comparison."""


class _Group:
    """Features binned by one comparison: `<=` at the edges (numeric) or `==` (categorical).

    `edges` is (K, g): K the most edges (or values) of any feature of the group, padded with
    NaN, which no value is `<=` or `==` to.
    """

    def __init__(self, columns: list[int], cuts: list[list[float]]) -> None:
        self.columns = np.asarray(columns, dtype=np.intp)
        self.sizes = [len(c) for c in cuts]
        k = max(self.sizes, default=0)
        self.edges = np.full((k, len(columns)), np.nan)
        for j, cut in enumerate(cuts):
            self.edges[: len(cut), j] = cut
        self.hits = np.zeros((k, len(columns)), dtype=np.int64)
        self._cast: dict[Any, NDArray[Any]] = {}

    def edges_as(self, dtype: Any) -> NDArray[Any]:
        """The edges in the window's dtype (exact: they were float32 or float64 values)."""
        found = self._cast.get(dtype)
        if found is None:
            found = self._cast[dtype] = self.edges.astype(dtype)
        return found


MAX_SPAN = 256
"""A categorical feature whose integer values span at most this many is counted by offset."""


class _Dense:
    """Integer categories counted in one `bincount`: code = value - min + the feature's offset.

    One pass whatever the number of categories, where equality needs one per category.
    """

    def __init__(self, columns: list[int], values: list[list[float]]) -> None:
        self.columns = np.asarray(columns, dtype=np.intp)
        self.low = np.array([v[0] for v in values], dtype=np.float64)
        spans = np.array([int(v[-1] - v[0]) + 1 for v in values], dtype=np.int64)
        self.spans = spans.astype(np.float64)
        self.offsets = np.concatenate([[0], np.cumsum(spans)[:-1]]).astype(np.int64)
        self.values = values
        self.hits = np.zeros(int(spans.sum()), dtype=np.int64)

    def add(self, part: NDArray[Any]) -> None:
        rel = part - self.low.astype(part.dtype)
        ok = (rel >= 0) & (rel < self.spans.astype(part.dtype)) & (rel == np.floor(rel))
        codes = rel.astype(np.int64, copy=False) + self.offsets
        self.hits += np.bincount(codes[ok], minlength=self.hits.size)

    def counts(self, i: int) -> NDArray[np.int64]:
        idx = self.offsets[i] + (np.asarray(self.values[i]) - self.low[i]).astype(np.int64)
        out: NDArray[np.int64] = self.hits[idx]
        return out


def _dense(values: list[float]) -> bool:
    return bool(values) and all(v == int(v) for v in values) and values[-1] - values[0] < MAX_SPAN


@dataclass(frozen=True)
class WindowCounts:
    """What `BinnedWindow.merge` adds: a window's raw counts, without its profile."""

    n: int
    finite: Counts
    neg_inf: Counts
    score_counts: Counts | None
    scored: int
    pca_counts: Counts | None
    numeric: Counts
    categorical: Counts
    dense: Counts


class BinnedWindow:
    """Per-feature counts of one window (features in the profile's order), growing by `add`.

    Counting runs over row chunks and compares a whole chunk with one edge per feature at a
    time: a contiguous, vectorised comparison, 2-3x faster than a `searchsorted` per column.
    """

    def __init__(self, profile: ReferenceProfile) -> None:
        self.profile = profile
        d = len(profile.features)
        self.n = 0
        self.finite = np.zeros(d, dtype=np.int64)
        self.neg_inf = np.zeros(d, dtype=np.int64)
        self.score_counts = (
            None if profile.score is None else np.zeros(len(profile.score.counts), dtype=np.int64)
        )
        self.scored = 0
        pca = profile.pca
        self.pca_counts = None if pca is None else np.zeros(len(pca.error.counts), dtype=np.int64)
        feats = list(enumerate(profile.features))
        numeric = [(j, f.edges) for j, f in feats if f.kind == "numeric"]
        categorical = [(j, f.values) for j, f in feats if f.kind == "categorical"]
        dense = [(j, v) for j, v in categorical if _dense(v)]
        sparse = [(j, v) for j, v in categorical if not _dense(v)]
        self._numeric = _Group([j for j, _ in numeric], [c for _, c in numeric])
        self._categorical = _Group([j for j, _ in sparse], [c for _, c in sparse])
        self._dense = _Dense([j for j, _ in dense], [v for _, v in dense])

    def add(self, X: NDArray[Any], scores: NDArray[Any] | None = None) -> BinnedWindow:
        """Count a batch of rows (n x features, profile order) and their scores; returns self."""
        X = np.asarray(X)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        d = len(self.profile.features)
        if X.ndim != 2 or X.shape[1] != d:
            raise ValidationError(
                f"a batch of shape {X.shape} does not have the profile's {d} features",
                field="features",
            )
        if len(X) == 0:
            return self
        pca = self._pca_arrays(X.dtype)
        for start in range(0, len(X), CHUNK_ROWS):
            chunk = X[start : start + CHUNK_ROWS]
            finite = np.isfinite(chunk)
            self.finite += np.add.reduce(finite, axis=0, dtype=np.int64)
            if not finite.all():
                self.neg_inf += np.add.reduce(chunk == -np.inf, axis=0, dtype=np.int64)
            for group, op in ((self._numeric, np.less_equal), (self._categorical, np.equal)):
                if group.columns.size:
                    part = chunk[:, group.columns]
                    edges = group.edges_as(X.dtype)
                    for k in range(edges.shape[0]):
                        group.hits[k] += np.add.reduce(op(part, edges[k]), axis=0, dtype=np.int64)
            if self._dense.columns.size:
                self._dense.add(chunk[:, self._dense.columns])
            if pca is not None and self.pca_counts is not None and self.profile.pca:
                mean, scale, components = pca
                z = (chunk - mean) / scale
                if not finite.all():
                    z[~finite] = 0.0  # missing at the mean, as `standardise` does
                err = reconstruction_error(z, components)
                self.pca_counts += column_counts(err, self.profile.pca.error)[0]
        if scores is not None and self.profile.score is not None and self.score_counts is not None:
            s = np.asarray(scores, dtype=np.float64)
            counts, missing, _ = column_counts(s, self.profile.score)
            self.score_counts += counts
            self.scored += int(s.size - missing)
        self.n += len(X)
        return self

    def _arrays(self) -> dict[str, Counts | None]:
        return {
            "finite": self.finite, "neg_inf": self.neg_inf, "score_counts": self.score_counts,
            "pca_counts": self.pca_counts, "numeric": self._numeric.hits,
            "categorical": self._categorical.hits, "dense": self._dense.hits,
        }  # fmt: skip

    def tally(self) -> WindowCounts:
        """The window's counts without its profile (small: what a shadow process sends)."""
        arrays = {k: None if a is None else a.copy() for k, a in self._arrays().items()}
        return WindowCounts(n=self.n, scored=self.scored, **arrays)  # type: ignore[arg-type]

    def merge(self, counts: WindowCounts) -> BinnedWindow:
        """Add the counts of another window on the same profile (`tally`); returns self.

        The same as adding its rows here: every count is a sum over rows."""
        mine = self._arrays()
        for name, a in mine.items():
            b = getattr(counts, name)
            if (a is None) != (b is None) or (a is not None and a.shape != b.shape):
                raise ValidationError(
                    f"window counts of another profile: {name} differs", field="profile"
                )
        for name, a in mine.items():
            if a is not None:
                a += getattr(counts, name)  # in place: the window's own arrays
        self.n += counts.n
        self.scored += counts.scored
        return self

    def _pca_arrays(self, dtype: Any) -> tuple[Any, Any, Any] | None:
        pca = self.profile.pca
        if pca is None:
            return None
        return (
            np.asarray(pca.mean, dtype=dtype),
            np.asarray(pca.scale, dtype=dtype),
            np.asarray(pca.components, dtype=dtype),
        )

    @property
    def missing(self) -> Counts:
        """Non-finite values per feature."""
        return self.n - self.finite

    @property
    def counts(self) -> list[Counts]:
        """Per feature, the window's counts in its reference bins (or values)."""
        out: list[Counts] = [np.zeros(0, dtype=np.int64)] * len(self.profile.features)
        numeric, categorical = self._numeric, self._categorical
        for i, j in enumerate(numeric.columns):
            k = numeric.sizes[i]
            le = numeric.hits[:k, i] - self.neg_inf[j]  # -inf is <= every edge, but missing
            bins = np.diff(le, prepend=0, append=self.finite[j])
            out[j] = bins.astype(np.int64)
        for i, j in enumerate(categorical.columns):
            out[j] = categorical.hits[: categorical.sizes[i], i].copy()
        for i, j in enumerate(self._dense.columns):
            out[j] = self._dense.counts(i)
        return out

    @property
    def unseen(self) -> Counts:
        """Per feature, finite values in no reference category (0 for numeric features)."""
        counts = self.counts
        return np.array(
            [
                self.finite[j] - int(counts[j].sum()) if f.kind == "categorical" else 0
                for j, f in enumerate(self.profile.features)
            ],
            dtype=np.int64,
        )
