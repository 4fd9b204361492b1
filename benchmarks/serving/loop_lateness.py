"""The event loop's lateness with and without a 100 % shadow, in process: what the shadow's
courier (its GIL holds) costs the answers, without HTTP's noise.

A service as `mlsd serve` builds it (prediction log, live drift, metrics, the shadow scorer
process, `tune()` applied) scores one request and sleeps 1 ms, in a loop, while a
heartbeat coroutine on the same loop sleeps 1 ms at a time and records how late it wakes:
a wake-up is late by what held the loop or the GIL meanwhile (a request's scoring, the
courier pickling a job or taking its answer back, the log's flusher). Rounds of `seconds`
alternate shadow on and off (the order swapping from round to round, so a trend in the
machine's load falls on both); per round the lateness p50 / p99 / p99.9, and the median
of the rounds' p99 per mode.

.venv/bin/python -m benchmarks.serving.loop_lateness HOME [ROUNDS] [SECONDS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchmarks.serving.log_cost import _transactions

BEAT_S = 0.001


def loop_lateness(home: Path, rounds: int = 4, seconds: float = 5.0) -> dict[str, Any]:
    """Per mode ("shadow", "none"): each round's lateness percentiles (ms), the median p99."""
    from mlsd.inference.batcher import BatchConfig
    from mlsd.inference.endpoint import HostedEndpoint
    from mlsd.inference.observers import ScoringRequest
    from mlsd.inference.routing import Variant
    from mlsd.rollout import ShadowLayer
    from mlsd.serving.app import build_service
    from mlsd.serving.service import ServeOptions
    from mlsd.serving.tuning import tune
    from mlsd.settings import Settings

    if rounds < 2 or seconds <= 0:
        raise ValueError("need at least 2 rounds of more than 0 s")
    options = ServeOptions(
        models=("fraud@champion",), watch_aliases=False, watch_rollouts=False,
        batching=BatchConfig(1, -1.0), cache_predictions=False, monitor_drift=True,
        shadow_process=True,
    )  # fmt: skip
    service = build_service(Settings(home=home), options)
    service.load_all()
    service.host.load("fraud/2")
    endpoint = HostedEndpoint(service.host, "fraud", None, version=2)
    layer = ShadowLayer("bench", Variant("v2", endpoint), 100.0)
    txs = _transactions(100_000)
    rounds_out: dict[str, list[list[float]]] = {"shadow": [], "none": []}
    sent = 0

    async def one(mode: str) -> None:
        nonlocal sent
        if layer in service.pipeline.layers:
            service.pipeline.uninstall(layer.name)
        if mode == "shadow":
            service.pipeline.install(layer)
        late: list[float] = []
        end = time.perf_counter() + seconds

        async def requests() -> None:
            nonlocal sent
            while time.perf_counter() < end:
                tx = txs[sent % len(txs)]
                sent += 1
                await service.score(ScoringRequest(f"r{sent}", "score", [tx]))
                await asyncio.sleep(BEAT_S)

        async def beat() -> None:
            while time.perf_counter() < end:
                began = time.perf_counter()
                await asyncio.sleep(BEAT_S)
                late.append(time.perf_counter() - began - BEAT_S)

        await asyncio.gather(requests(), beat())
        await service.pipeline.drain()
        rounds_out[mode].append([float(q) for q in np.percentile(late, [50, 99, 99.9]) * 1e3])

    async def run() -> None:
        service.pipeline.install(layer)  # the child starts, loads, warms
        for tx in txs[:200]:
            await service.score(ScoringRequest(f"w{tx.transaction_id}", "score", [tx]))
        await service.pipeline.drain()
        tune()
        for r in range(rounds):
            for mode in ("shadow", "none") if r % 2 == 0 else ("none", "shadow"):
                await one(mode)

    try:
        asyncio.run(run())
    finally:
        service.close()
    out: dict[str, Any] = {"rounds": rounds, "seconds": seconds}
    for mode, got in rounds_out.items():
        out[mode] = {"p50_p99_p999_ms": got, "median_p99_ms": statistics.median(q[1] for q in got)}
    return out


if __name__ == "__main__":
    args = sys.argv[2:4]
    print(loop_lateness(Path(sys.argv[1]), *(int(args[0]),) if args else (),
                        *(float(a) for a in args[1:])))  # fmt: skip
