"""What a 100 % shadow costs the champion, in process (no HTTP noise).

Two services on the same data folder, both with the prediction log and no cache; one has
a `ShadowLayer` mirroring every request to fraud/2 (a copy of the champion under another
version, so none of its work is shared). They score the same transactions one at a time,
blocks alternating so machine noise hits both alike. Per service: the primary's p50/p99
(the answer's latency; the shadow is scored by the shadow queue's thread meanwhile) and the
process CPU time per call including the shadow's (each block waits for its shadows before
the clock stops). Also in the HTTP benchmark as the `mlsd_shadow` server.

.venv/bin/python -m benchmarks.serving.shadow_cost HOME   (HOME from fixture.prepare_home)
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import numpy as np
from benchmarks.serving.log_cost import _transactions


def shadow_cost(home: Path, calls: int = 4000, block: int = 200) -> dict[str, float]:
    """p50/p99 (µs) of the answer and CPU µs per call, with and without a 100 % shadow."""
    from mlsd.inference.batcher import BatchConfig
    from mlsd.inference.endpoint import HostedEndpoint
    from mlsd.inference.observers import ScoringRequest
    from mlsd.inference.routing import Variant
    from mlsd.rollout import ShadowLayer
    from mlsd.serving.app import build_service
    from mlsd.serving.service import ServeOptions
    from mlsd.settings import Settings

    settings = Settings(home=home)
    options = {"models": ("fraud@champion",), "watch_aliases": False, "watch_rollouts": False,
               "batching": BatchConfig(1, -1.0), "cache_predictions": False}  # fmt: skip
    services = {name: build_service(settings, ServeOptions(**options))  # type: ignore[arg-type]
                for name in ("none", "shadow")}  # fmt: skip
    for service in services.values():
        service.load_all()
    shadowed = services["shadow"]
    shadowed.host.load("fraud/2")
    endpoint = HostedEndpoint(shadowed.host, "fraud", None, version=2)
    shadowed.pipeline.install(ShadowLayer("bench", Variant("v2", endpoint), 100.0))
    txs = _transactions(calls)
    timings: dict[str, list[float]] = {name: [] for name in services}
    cpu: dict[str, float] = dict.fromkeys(services, 0.0)

    async def run() -> None:
        for service in services.values():  # warm up
            for tx in txs[:50]:
                await service.score(ScoringRequest("warm", "score", [tx]))
            await service.pipeline.drain()
        for start in range(0, calls, block):
            for name, service in services.items():
                began_cpu = time.process_time()
                for tx in txs[start : start + block]:
                    began = time.perf_counter()
                    await service.score(ScoringRequest(f"r{tx.transaction_id}", "score", [tx]))
                    timings[name].append(time.perf_counter() - began)
                await service.pipeline.drain()  # the shadows' work is in this block's CPU
                cpu[name] += time.process_time() - began_cpu

    try:
        asyncio.run(run())
    finally:
        dropped = float(shadowed.pipeline.shadows.dropped)
        for service in services.values():
            service.close()
    out: dict[str, float] = {}
    for name, t in timings.items():
        us = np.array(t) * 1e6
        out[f"{name}_p50_us"] = float(np.percentile(us, 50))
        out[f"{name}_p99_us"] = float(np.percentile(us, 99))
        out[f"{name}_cpu_us_per_call"] = cpu[name] / calls * 1e6
    out["overhead_p99"] = out["shadow_p99_us"] / out["none_p99_us"] - 1.0
    out["overhead_p50"] = out["shadow_p50_us"] / out["none_p50_us"] - 1.0
    out["overhead_cpu"] = out["shadow_cpu_us_per_call"] / out["none_cpu_us_per_call"] - 1.0
    out["dropped"] = dropped
    out["calls"] = float(calls)
    return out


if __name__ == "__main__":
    print(shadow_cost(Path(sys.argv[1])))
