"""What a 100 % shadow costs the champion, in process (no HTTP noise).

Three services on the same data folder, all with the prediction log and no cache; two have
a `ShadowLayer` mirroring every request to fraud/2 (a copy of the champion under another
version, so none of its work is shared): `shadow` scores it in the shadow scorer process
(as `mlsd serve`), `thread` in the server's shadow thread. They score the same transactions
one at a time, blocks alternating so machine noise hits all alike. Per service: the
primary's p50/p99 (the answer's latency; the shadow is scored meanwhile) and the CPU time
per call including the shadow's (each block waits for its shadows before the clock stops):
the server's own, and for `shadow` the child's besides (from /proc). Also in the HTTP
benchmark as the `mlsd_shadow` and `mlsd_shadow_thread` servers.

.venv/bin/python -m benchmarks.serving.shadow_cost HOME [--no-drift]   (HOME from
fixture.prepare_home; live drift is on unless --no-drift, as under `mlsd serve`)
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchmarks.serving.log_cost import _transactions


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) a process used so far, 0 if it is gone (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _threads() -> dict[int, threading.Thread]:
    return {t.ident: t for t in threading.enumerate() if t.ident is not None}


def _threads_cpu_s(threads: list[threading.Thread]) -> float:
    """CPU seconds the given threads used so far (each thread's own CPU clock)."""
    total = 0.0
    for thread in threads:
        if thread.ident is None or not thread.is_alive():
            continue
        try:
            total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (OSError, AttributeError):  # exited meanwhile, or not on this OS
            continue
    return total


def shadow_cost(
    home: Path, calls: int = 4000, block: int = 200, *, drift: bool = True
) -> dict[str, float]:
    """p50/p99 (µs) of the answer and CPU µs per call, without a shadow, with a 100 % shadow
    in the shadow process (`shadow`) and in the server's thread (`thread`).

    `*_bg_cpu_us_per_call` is the CPU of the service's own background threads (shadow
    worker or courier, the log's flusher, ...): Python work that competes with the event
    loop for the GIL, the tail's cause, measured by thread CPU clocks and so not by the
    machine's noise. `*_own_cpu_us_per_call` is the service's own CPU alone: its event
    loop's during its blocks and its own threads' over the whole run (the drift thread
    drains every second, whichever service's block runs meanwhile), and
    `shadow_own_cpu_us_per_shadow` what the shadow adds to it: the server-side CPU of one
    shadowed request, the child's apart. `drift`: live drift on in every service, as under
    `mlsd serve` (its thread bins the shadow's rows too).
    """
    from mlsd.inference.batcher import BatchConfig
    from mlsd.inference.endpoint import HostedEndpoint
    from mlsd.inference.observers import ScoringRequest
    from mlsd.inference.routing import Variant
    from mlsd.rollout import ShadowLayer
    from mlsd.serving.app import build_service
    from mlsd.serving.service import ServeOptions
    from mlsd.settings import Settings

    settings = Settings(home=home)
    options: dict[str, Any] = {
        "models": ("fraud@champion",), "watch_aliases": False, "watch_rollouts": False,
        "batching": BatchConfig(1, -1.0), "cache_predictions": False, "monitor_drift": drift,
    }  # fmt: skip
    services = {}
    own: dict[str, dict[int, threading.Thread]] = {}  # each service's background threads
    for name in ("none", "shadow", "thread"):
        before = _threads()
        services[name] = build_service(settings, ServeOptions(
            **options, shadow_process=name == "shadow"))  # fmt: skip
        own[name] = {i: t for i, t in _threads().items() if i not in before}
    for name, service in services.items():
        service.load_all()
        if name != "none":
            service.host.load("fraud/2")
            endpoint = HostedEndpoint(service.host, "fraud", None, version=2)
            service.pipeline.install(ShadowLayer("bench", Variant("v2", endpoint), 100.0))
    shadowed = services["shadow"]
    txs = _transactions(calls)
    timings: dict[str, list[float]] = {name: [] for name in services}
    cpu: dict[str, float] = dict.fromkeys(services, 0.0)
    bg_cpu: dict[str, float] = dict.fromkeys(services, 0.0)
    child_cpu = 0.0
    loop_cpu: dict[str, float] = dict.fromkeys(services, 0.0)  # the event loop's, its blocks
    total_bg: dict[str, float] = dict.fromkeys(services, 0.0)  # own threads, the whole run
    by_thread: dict[str, float] = {}  # the same by thread (service:thread name)

    def child_pid() -> int | None:
        process = shadowed.pipeline.shadow_process
        return None if process is None else process.pid

    async def run() -> None:
        nonlocal child_cpu
        for name, service in services.items():  # warm up (the shadow process starts)
            before = _threads()
            for tx in txs[:50]:
                await service.score(ScoringRequest("warm", "score", [tx]))
            await service.pipeline.drain()
            own[name].update({i: t for i, t in _threads().items() if i not in before})
        while child_pid() is None:
            await asyncio.sleep(0.1)
        for name in services:
            total_bg[name] = -_threads_cpu_s(list(own[name].values()))
            for thread in own[name].values():
                by_thread[f"{name}:{thread.name}"] = -_threads_cpu_s([thread])
        for start in range(0, calls, block):
            for name, service in services.items():
                pid = child_pid() if name == "shadow" else None
                threads = list(own[name].values())
                began_cpu, began_child = time.process_time(), _cpu_s(pid)
                began_bg, began_loop = _threads_cpu_s(threads), time.thread_time()
                for tx in txs[start : start + block]:
                    began = time.perf_counter()
                    await service.score(ScoringRequest(f"r{tx.transaction_id}", "score", [tx]))
                    timings[name].append(time.perf_counter() - began)
                await service.pipeline.drain()  # the shadows' work is in this block's CPU
                cpu[name] += time.process_time() - began_cpu
                loop_cpu[name] += time.thread_time() - began_loop
                bg_cpu[name] += _threads_cpu_s(threads) - began_bg
                if pid is not None:
                    child_cpu += _cpu_s(pid) - began_child
        await asyncio.sleep(2.5)  # the drift threads' last drains (every second)
        for name in services:
            total_bg[name] += _threads_cpu_s(list(own[name].values()))
            for thread in own[name].values():
                by_thread[f"{name}:{thread.name}"] += _threads_cpu_s([thread])

    try:
        asyncio.run(run())
    finally:
        process = shadowed.pipeline.shadow_process
        dropped = float(process.dropped if process is not None else 0)
        dropped += float(shadowed.pipeline.shadows.dropped)
        thread_dropped = float(services["thread"].pipeline.shadows.dropped)
        for service in services.values():
            service.close()
    out: dict[str, float] = {}
    for name, t in timings.items():
        us = np.array(t) * 1e6
        out[f"{name}_p50_us"] = float(np.percentile(us, 50))
        out[f"{name}_p99_us"] = float(np.percentile(us, 99))
        out[f"{name}_cpu_us_per_call"] = cpu[name] / calls * 1e6
        out[f"{name}_bg_cpu_us_per_call"] = bg_cpu[name] / calls * 1e6
        out[f"{name}_own_cpu_us_per_call"] = (loop_cpu[name] + total_bg[name]) / calls * 1e6
    for key, seconds in sorted(by_thread.items()):
        if seconds > 0:
            out[f"{key}_cpu_us_per_call"] = seconds / calls * 1e6
    out["shadow_own_cpu_us_per_shadow"] = (
        out["shadow_own_cpu_us_per_call"] - out["none_own_cpu_us_per_call"]
    )
    out["shadow_server_cpu_us_per_call"] = out["shadow_cpu_us_per_call"]
    out["shadow_child_cpu_us_per_call"] = child_cpu / calls * 1e6
    out["shadow_cpu_us_per_call"] += out["shadow_child_cpu_us_per_call"]
    for name, prefix in (("shadow", ""), ("thread", "thread_")):
        out[f"{prefix}overhead_p99"] = out[f"{name}_p99_us"] / out["none_p99_us"] - 1.0
        out[f"{prefix}overhead_p50"] = out[f"{name}_p50_us"] / out["none_p50_us"] - 1.0
        out[f"{prefix}overhead_cpu"] = (
            out[f"{name}_cpu_us_per_call"] / out["none_cpu_us_per_call"] - 1.0
        )
    out["overhead_server_cpu"] = (
        out["shadow_server_cpu_us_per_call"] / out["none_cpu_us_per_call"] - 1.0
    )
    out["dropped"] = dropped
    out["thread_dropped"] = thread_dropped
    out["calls"] = float(calls)
    return out


if __name__ == "__main__":
    print(shadow_cost(Path(sys.argv[1]), drift="--no-drift" not in sys.argv[2:]))
