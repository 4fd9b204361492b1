"""A shadow that is slow or crashes never touches the answers, and its queue stays bounded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from mlsd.inference.endpoint import VersionEndpoint
from mlsd.inference.observers import ScoringRequest
from mlsd.inference.routing import Variant
from mlsd.rollout import ShadowLayer
from mlsd.rollout.testing import broken
from mlsd.serving.service import Service
from tests.unit.inference.layers import Seen
from tests.unit.rollout.conftest import transaction, wait_until


@pytest.mark.parametrize("kind", ["slow", "raising"])
def test_a_bad_shadow_never_touches_the_answers(kind: str, build_service: Any, store: Any) -> None:
    service: Service = build_service(store, shadow_capacity=16)
    service.host.load("fraud/2")
    shadow = broken(service.host.get("fraud", version=2), kind)  # type: ignore[arg-type]
    service.pipeline.install(ShadowLayer("s1", Variant("v2", VersionEndpoint(shadow)), 100.0))
    seen = Seen()
    service.pipeline.add_observer(seen)
    latencies: list[float] = []

    async def main() -> None:
        for i in range(300):
            started = time.perf_counter()
            await service.score(ScoringRequest(f"q{i}", "score", [transaction(i)]))
            latencies.append(time.perf_counter() - started)

    asyncio.run(main())
    primaries = [b for b in seen.batches if b.role == "primary"]
    assert len(primaries) == 300, "every request answered"
    assert all(b.variant == "champion" for b in primaries)
    # a 50 ms shadow on every request: the answers do not wait for it
    assert float(np.median(latencies)) < 0.02
    queue = service.pipeline.shadows
    if kind == "slow":  # 300 requests in far less than 300 x 50 ms: most were dropped
        assert queue.dropped > 0
        metrics = service.metrics.render().decode()
        assert f'mlsd_shadow_dropped_total{{variant="s1:shadow"}} {float(queue.dropped)}' in metrics
    assert queue.depth <= 16
    assert wait_until(lambda: queue.depth == 0, 30.0)


def test_the_shadow_queue_is_bounded(service: Service) -> None:
    import threading

    from mlsd.inference.shadow_queue import ShadowQueue

    release = threading.Event()

    def score(items: list[object]) -> None:
        release.wait(10)  # a shadow that hangs: the queue behind it fills

    queue = ShadowQueue(score, service.metrics, capacity=8)
    variant = Variant("x:shadow", service.endpoint("fraud"))
    for i in range(100):
        queue.put((variant,), ScoringRequest(f"q{i}", "score", ()))
    assert queue.depth <= 8
    assert queue.dropped >= 100 - 8 - 1  # one may be in the worker's hands
    release.set()
    queue.join()
    assert queue.depth == 0


def test_shadows_scored_together_get_their_own_rows_and_scores(service: Service) -> None:
    service.host.load("fraud/2")
    model = service.host.get("fraud", version=2)
    service.pipeline.install(ShadowLayer("s1", Variant("v2", VersionEndpoint(model)), 100.0))
    seen = Seen()
    service.pipeline.add_observer(seen)

    async def main() -> None:
        await asyncio.gather(
            *(service.score(ScoringRequest(f"q{i}", "score", [transaction(i)])) for i in range(64))
        )
        await service.pipeline.drain()

    asyncio.run(main())
    primary = {b.request.request_id: b for b in seen.batches if b.role == "primary"}
    shadows = {b.request.request_id: b for b in seen.batches if b.role == "shadow"}
    assert set(shadows) == set(primary)
    for rid, batch in shadows.items():
        np.testing.assert_array_equal(batch.values, primary[rid].values)
        np.testing.assert_allclose(batch.scores, model.predict(batch.values))
        assert batch.request.transactions[0].transaction_id == int(rid[1:])
