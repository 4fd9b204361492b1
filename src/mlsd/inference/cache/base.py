"""The prediction cache interface: scores keyed by model version and input-feature hash."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class CacheStats:
    """Hits and misses since the cache was made (this process), entries held, backend errors,
    and the misses that were entries refused by the freshness bound."""

    hits: int
    misses: int
    size: int
    errors: int = 0
    #: Lookups refused by the freshness bound (an entry there, its features since renewed).
    stale: int = 0

    @property
    def hit_rate(self) -> float:
        """Hits over lookups, 0 when nothing was looked up."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@runtime_checkable
class PredictionCache(Protocol):
    """Scores by `model_key` (`"{name}/{version}"`) and row hash, with a TTL.

    A backend error never fails a request: lookups miss, writes are dropped, and
    the error is counted in `stats().errors`.
    """

    def get_many(
        self,
        model_key: str,
        hashes: Sequence[str],
        *,
        min_events: Sequence[int] | None = None,
    ) -> list[float | None]:
        """The cached score of each hash, None where absent or expired.

        With `min_events` (the freshness bound, one µs time per hash), an entry is served only
        if it was stored with a features' event time at least that (`put_many(events=...)`);
        an entry stored without one is not served. The refusals are counted in `stale`.
        """
        ...

    def put_many(
        self,
        model_key: str,
        hashes: Sequence[str],
        scores: Sequence[float],
        *,
        events: Sequence[int] | None = None,
    ) -> None:
        """Store one score per hash, with the newest event time (µs) of its features if given."""
        ...

    def clear_model(self, model_name: str) -> None:
        """Forget every version of a model (its version changed)."""
        ...

    def stats(self) -> CacheStats:
        """Counters and size."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def model_key(name: str, version: str | int) -> str:
    """The cache key of a model version."""
    return f"{name}/{version}"


def hash_rows(values: np.ndarray) -> list[str]:
    """A blake2b digest of each row's bytes, as hex (16 bytes).

    Rows are cast to contiguous float64 first, so the same features hash the same
    whether they arrive as float32 or float64; -0.0 is folded into 0.0.

    >>> hash_rows(np.array([[1.0, 2.0]], dtype=np.float32)) == hash_rows(np.array([[1.0, 2.0]]))
    True
    >>> len(set(hash_rows(np.array([[1.0, 2.0], [2.0, 1.0]]))))
    2
    """
    blake = hashlib.blake2b
    if isinstance(values, np.ndarray) and values.ndim == 2 and values.shape[0] == 1:
        # one row (the common request): one contiguous float64 copy, the same bytes as below
        row = values.astype(np.float64)
        row += 0.0  # -0.0 -> 0.0
        return [blake(row.data, digest_size=16).hexdigest()]
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-d array of rows, got {matrix.ndim} dimensions")
    matrix = np.ascontiguousarray(matrix + 0.0)  # + 0.0 turns -0.0 into 0.0
    return [blake(row, digest_size=16).hexdigest() for row in matrix]
