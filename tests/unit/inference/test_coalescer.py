"""Concurrent requests share one online-store call; results go back to their owners."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from mlsd.errors import UnavailableError
from mlsd.features.store import FeatureStore
from mlsd.inference.coalescer import Coalescer
from mlsd.inference.observers import ScoringRequest
from mlsd.serving.schemas import TransactionBody
from mlsd.serving.testing import sample_transaction


class Counting:
    """The real feature store, counting its online calls."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.view_versions = store.view_versions
        self.calls: list[int] = []

    def online_vectors(self, requests: Sequence[Mapping[str, Any]], features: Sequence[str]) -> Any:
        self.calls.append(len(requests))
        return self.store.online_vectors(requests, features)


def test_concurrent_scores_share_one_lookup(store: FeatureStore, build_service: Any) -> None:
    counting = Counting(store)
    service = build_service(counting, cache=False)
    txs = [
        TransactionBody.model_validate(
            sample_transaction(transaction_id=i, customer_id=i % 3)
        ).to_domain()
        for i in range(12)
    ]

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(service.score(ScoringRequest(f"r{i}", "score", [tx])) for i, tx in enumerate(txs))
        )

    together = asyncio.run(main())
    assert counting.calls == [12]

    async def alone() -> list[Any]:
        return [await service.score(ScoringRequest("r", "score", [tx])) for tx in txs]

    one_by_one = asyncio.run(alone())
    assert counting.calls == [12] + [1] * 12
    for a, b in zip(together, one_by_one, strict=True):
        assert a.statuses == b.statuses
        np.testing.assert_array_equal(a.values, b.values)  # NaN where missing, in both
        np.testing.assert_array_equal(a.scores, b.scores)


def test_a_failing_call_fails_every_waiter() -> None:
    def boom(items: list[int]) -> list[int]:
        raise UnavailableError("down")

    coalescer: Coalescer[int, int] = Coalescer(boom)

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(coalescer.submit([i]) for i in range(3)), return_exceptions=True
        )

    assert all(isinstance(r, UnavailableError) for r in asyncio.run(main()))
    assert coalescer.calls == 1


@pytest.mark.parametrize("limit", [1, 4])
def test_max_items_flushes_early(limit: int) -> None:
    coalescer: Coalescer[int, int] = Coalescer(lambda items: [i * 10 for i in items], limit)

    async def main() -> list[list[int]]:
        return await asyncio.gather(*(coalescer.submit([i, i + 1]) for i in range(0, 8, 2)))

    assert asyncio.run(main()) == [[0, 10], [20, 30], [40, 50], [60, 70]]
    assert coalescer.calls == (4 if limit == 1 else 2)
