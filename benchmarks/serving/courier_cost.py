"""The server's CPU per shadow with the shadow scorer process, job by job, without the
event loop's noise.

`shadow_cost` measures whole services: the courier's CPU per shadow there depends on how
many shadows a 20 ms job gathers (its fixed costs are shared by them), so on the loop's
speed, so on the machine's load. Here the courier thread is stopped once the child is up
and jobs of exactly `size` shadows are shipped and taken back by hand, in this thread:
the CPU (this thread's clock) of sending one job (`ship`), of taking its answer back and
telling the observers (`receive`), and of the live drift monitor's drain of what that left
it (`drift`: the shadow rows binned in the server, or the child's counts added), per shadow.
As `mlsd serve`: prediction log, live drift, metrics. Uses the courier's private steps
(`_ship`, `_receive`): a benchmark of them, not an API.

.venv/bin/python -m benchmarks.serving.courier_cost HOME [JOBS] [SIZE]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.serving.log_cost import _transactions


def courier_cost(home: Path, jobs: int = 60, size: int = 64) -> dict[str, float]:
    """Median CPU µs per shadow of each step, over `jobs` jobs of `size` shadows."""
    from mlsd.inference.batcher import BatchConfig
    from mlsd.inference.endpoint import HostedEndpoint
    from mlsd.inference.observers import ScoringRequest
    from mlsd.inference.routing import Variant
    from mlsd.rollout import ShadowLayer
    from mlsd.serving.app import build_service
    from mlsd.serving.service import ServeOptions
    from mlsd.settings import Settings

    options: dict[str, Any] = {
        "models": ("fraud@champion",), "watch_aliases": False, "watch_rollouts": False,
        "batching": BatchConfig(1, -1.0), "cache_predictions": False, "monitor_drift": True,
        "shadow_process": True,
    }  # fmt: skip
    service = build_service(Settings(home=home), ServeOptions(**options))
    service.load_all()
    service.host.load("fraud/2")
    endpoint = HostedEndpoint(service.host, "fraud", None, version=2)
    service.pipeline.install(ShadowLayer("bench", Variant("v2", endpoint), 100.0))
    process = service.pipeline.shadow_process
    drift = service.drift
    if process is None or drift is None:
        raise RuntimeError("the service has no shadow process or no drift monitor")
    drift.close()  # drained by hand below
    txs = _transactions(jobs * size + 100)
    steps: dict[str, list[float]] = {"ship": [], "receive": [], "drift": []}

    async def score(batch: list[Any], tag: str) -> None:
        for tx in batch:
            await service.score(ScoringRequest(f"{tag}{tx.transaction_id}", "score", [tx]))

    async def run() -> None:  # one loop: the pipeline's async parts stay on it
        await score(txs[:100], "warm")  # the child starts, loads, warms
        if not process.join(120.0):
            raise RuntimeError("the shadow process did not take the warm-up shadows")
        process._stop.set()  # the courier stops; the child stays up
        process._wake.set()
        if process._thread is not None:
            process._thread.join(10.0)
        conn = process._conn
        if conn is None:
            raise RuntimeError("no shadow process is running")
        for j in range(jobs):
            start = 100 + j * size
            await score(txs[start : start + size], "r")  # queued: nobody ships
            drift.drain()  # the primaries' rows, not timed
            began = time.thread_time()
            process._ship(conn)
            shipped = time.thread_time()
            while process._sent:  # until its answer is back
                process._receive(5.0)  # waiting costs no CPU
            received = time.thread_time()
            drift.drain()
            drained = time.thread_time()
            steps["ship"].append((shipped - began) / size * 1e6)
            steps["receive"].append((received - shipped) / size * 1e6)
            steps["drift"].append((drained - received) / size * 1e6)

    try:
        asyncio.run(run())
    finally:
        service.close()
    out = {f"{name}_cpu_us_per_shadow": statistics.median(v) for name, v in steps.items()}
    out["total_cpu_us_per_shadow"] = sum(out.values())
    out["dropped"] = float(process.dropped)
    out["jobs"], out["size"] = float(jobs), float(size)
    return out


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[2:4]]
    print(courier_cost(Path(sys.argv[1]), *args))
