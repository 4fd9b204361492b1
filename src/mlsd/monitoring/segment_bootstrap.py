"""Resampling a segment comparison: the confusion cells of customers, redrawn.

Each labelled row falls in one of four cells (index `2 * fraud + declined`). A customer's
rows are summed into one cells vector: customers, not rows, are what is resampled, since
one card's transactions are not independent. `resampled` draws each segment's customers
with replacement (the bootstrap of an interval), `permuted` shuffles the customers'
segments (what no gap looks like, for a p-value); `spreads` reads the max - min of a rate
across segments in each draw.
"""

from __future__ import annotations

import numpy as np

# confusion cells, indexed 2 * fraud + declined
TN, FP, FN, TP = 0, 1, 2, 3


CHUNK = 256  # draws per block: weights (block x customers) stay a few MB


def resampled(
    clusters: np.ndarray, cluster_seg: np.ndarray, k: int, rng: np.random.Generator, n: int
) -> np.ndarray:
    """(n, k, 4) cells: each segment's customers drawn with replacement, as many as it has."""
    out = np.zeros((n, k, 4), dtype=np.int64)
    for s in range(k):
        mine = clusters[cluster_seg == s]
        if len(mine) == 0:
            continue
        uniform = np.full(len(mine), 1.0 / len(mine))
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            out[lo:hi, s] = rng.multinomial(len(mine), uniform, size=hi - lo) @ mine
    return out


def permuted(
    clusters: np.ndarray, cluster_seg: np.ndarray, k: int, rng: np.random.Generator, n: int
) -> np.ndarray:
    """(n, k, 4) cells with the customers' segments shuffled: what no gap looks like."""
    out = np.zeros((n, k, 4), dtype=np.int64)
    for b in range(n):
        shuffled = rng.permutation(cluster_seg)
        for c in range(4):
            out[b, :, c] = np.bincount(shuffled, weights=clusters[:, c], minlength=k)
    return out


def hits_and_support(metric: str, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator of `metric` from cells (..., 4)."""
    if metric == "false_positive_rate":
        return cells[..., FP], cells[..., TN] + cells[..., FP]
    if metric == "recall":
        return cells[..., TP], cells[..., FN] + cells[..., TP]
    return cells[..., FP] + cells[..., TP], cells.sum(axis=-1)


def spreads(metric: str, draws: np.ndarray) -> np.ndarray:
    """max - min over segments of `metric` in each draw (n_draws, segments, 4); draws
    where fewer than two segments have a denominator are left out."""
    hits, denominator = hits_and_support(metric, draws)
    rate = np.where(denominator > 0, hits / np.maximum(denominator, 1), np.nan)
    defined = np.isfinite(rate).sum(axis=1) >= 2
    out: np.ndarray = np.nanmax(rate[defined], axis=1) - np.nanmin(rate[defined], axis=1)
    return out
