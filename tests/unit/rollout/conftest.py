"""Helpers for the rollout tests: traffic of many customers through a real service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from mlsd.data.transaction import Transaction
from mlsd.inference.observers import ScoringRequest
from mlsd.serving.service import Service

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def transaction(i: int, customers: int = 1000) -> Transaction:
    """Transaction `i` of customer `i % customers`; every 7th has a large amount."""
    amount = 150.0 + (i % 13) * 10 if i % 7 == 0 else 10.0 + (i % 50)
    return Transaction(i, i % customers, 7, amount, T0 + timedelta(seconds=i))


def fraud_label(i: int) -> int:
    """What the tiny models learnt is fraud: a large amount."""
    return int(transaction(i).amount > 120)


def send(service: Service, ids: Iterable[int], customers: int = 1000) -> None:
    """Score one request per transaction id through the service's pipeline."""

    async def main() -> None:
        for i in ids:
            await service.score(ScoringRequest(f"q{i}", "score", [transaction(i, customers)]))

    asyncio.run(main())


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll `condition` until true or the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()
