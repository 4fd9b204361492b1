"""Deliberately bad challengers, for the rollout tests, the canary lab and the demo.

Each wraps the runtime of a real loaded version, so the challenger is served exactly as a
registered one would be (its features built, its cache, its threshold); only its answers
are broken: one raises on a tenth of the rows, one takes 50 ms longer, one answers a
constant score, one buries a share of its scores (its average precision drops by a fifth or
more, which the tests and the lab measure rather than assume).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Literal

import numpy as np

from mlsd.inference.endpoint import Endpoint, VersionEndpoint
from mlsd.inference.host import ModelHost
from mlsd.inference.metrics import ServingMetrics
from mlsd.inference.runtimes import Runtime
from mlsd.inference.spec import LoadedModel

BadKind = Literal["raising", "slow", "constant", "worse"]
BAD_KINDS: tuple[BadKind, ...] = ("raising", "slow", "constant", "worse")


def _row_keys(values: np.ndarray) -> np.ndarray:
    """A deterministic number per row (CRC32 of its bytes): the same row, the same fate."""
    return np.array([zlib.crc32(row.tobytes()) for row in np.ascontiguousarray(values)])


class _Wrapped:
    """A runtime around another one (same inputs)."""

    def __init__(self, inner: Runtime, what: str) -> None:
        self.inner = inner
        self.name = f"{what}({inner.name})"
        self.n_features = inner.n_features


class RaisingRuntime(_Wrapped):
    """Raises on about `every`-th of the rows (any batch holding one fails)."""

    def __init__(self, inner: Runtime, every: int = 10) -> None:
        super().__init__(inner, "raising")
        self.every = every

    def predict(self, values: np.ndarray) -> np.ndarray:
        if np.any(_row_keys(values) % self.every == 0):
            raise RuntimeError("challenger bug: index out of range on this input")
        return self.inner.predict(values)


class SlowRuntime(_Wrapped):
    """The real scores, `delay_s` late."""

    def __init__(self, inner: Runtime, delay_s: float = 0.05) -> None:
        super().__init__(inner, "slow")
        self.delay_s = delay_s

    def predict(self, values: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        return self.inner.predict(values)


class ConstantRuntime(_Wrapped):
    """One score for every row (a broken export, a model that learnt the base rate)."""

    def __init__(self, inner: Runtime, score: float = 0.02) -> None:
        super().__init__(inner, "constant")
        self.score = score

    def predict(self, values: np.ndarray) -> np.ndarray:
        return np.full(len(values), self.score, dtype=np.float64)


class WorseRuntime(_Wrapped):
    """The real scores, but a deterministic `share` of the rows get a low random score."""

    def __init__(self, inner: Runtime, share: float = 0.35, ceiling: float = 0.3) -> None:
        super().__init__(inner, "worse")
        self.share, self.ceiling = share, ceiling

    def predict(self, values: np.ndarray) -> np.ndarray:
        scores = np.asarray(self.inner.predict(values), dtype=np.float64).copy()
        keys = _row_keys(values)
        buried = (keys % 1000) < self.share * 1000
        scores[buried] = (keys[buried] % 997) / 997.0 * self.ceiling
        return scores


def broken(model: LoadedModel, kind: BadKind) -> LoadedModel:
    """`model` with its runtime made bad in the named way."""
    runtime: Runtime
    if kind == "raising":
        runtime = RaisingRuntime(model.runtime)
    elif kind == "slow":
        runtime = SlowRuntime(model.runtime)
    elif kind == "constant":
        runtime = ConstantRuntime(model.runtime)
    else:
        runtime = WorseRuntime(model.runtime)
    return replace(model, runtime=runtime)


def bad_challenger(
    host: ModelHost, kind: BadKind, metrics: ServingMetrics | None = None
) -> Callable[[str, int], Endpoint]:
    """An agent's `endpoint_for` serving the named bad variant of each challenger version."""

    def endpoint_for(name: str, version: int) -> Endpoint:
        host.load(f"{name}/{version}")
        return VersionEndpoint(broken(host.get(name, version=version), kind), metrics)

    return endpoint_for


class KnownLabels:
    """A label source over a dict (simulations know every outcome at once)."""

    def __init__(self, labels: Mapping[int, int]) -> None:
        self._labels = labels

    def labels(self, transaction_ids: Sequence[int]) -> Mapping[int, int]:
        """The known labels among `transaction_ids`."""
        return {t: self._labels[t] for t in transaction_ids if t in self._labels}
