"""HTTP benchmarks: max requests/s against the baselines, latency at half load, log cost."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.serving.fixture import N_CUSTOMERS, N_TERMINALS
from benchmarks.serving.launch import PIDS, cpu_seconds, serve
from benchmarks.serving.loadgen import open_loop, score_bodies, write_wrk_script, wrk
from rich.progress import Progress

#: name -> (factory, ready path, extra environment)
SERVERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "bare": ("bare_app", "/openapi.json", {}),
    "naive_onnx": ("naive_app", "/openapi.json", {}),
    "mlsd": ("mlsd_app", "/v2/health/ready", {}),
    "mlsd_no_journal": ("mlsd_app", "/v2/health/ready", {"MLSD_PREDICTION_LOG_JOURNAL": "0"}),
    "mlsd_no_log": ("mlsd_app", "/v2/health/ready", {"MLSD_BENCH_PREDLOG": "0"}),
    # the Parquet log written by a writer process, not the server's flusher thread
    "mlsd_process_log": (
        "mlsd_app",
        "/v2/health/ready",
        {"MLSD_PREDICTION_LOG_WRITER": "process"},
    ),
    "mlsd_no_drift": ("mlsd_app", "/v2/health/ready", {"MLSD_BENCH_DRIFT": "0"}),
    # what each serving lesson is worth: the FastAPI route instead of the hot path, and
    # no GC / GIL tuning
    "mlsd_fastapi_route": ("mlsd_app", "/v2/health/ready", {"MLSD_BENCH_HOT_PATH": "0"}),
    "mlsd_untuned": ("mlsd_app", "/v2/health/ready", {"MLSD_BENCH_TUNE": "0"}),
    # a 100 % shadow (rollout issue: the champion's p99 at half rate grows <= 5 %)
    "mlsd_shadow": ("mlsd_app", "/v2/health/ready", {"MLSD_BENCH_SHADOW": "100"}),
    # the same shadow scored by the server's own thread instead of the shadow process
    "mlsd_shadow_thread": (
        "mlsd_app",
        "/v2/health/ready",
        {"MLSD_BENCH_SHADOW": "100", "MLSD_BENCH_SHADOW_PROCESS": "0"},
    ),
}

#: (max_batch_size, max_delay_ms) served over HTTP for the batching curve; -1 = off.
HTTP_BATCHING = ((1, -1.0), (64, 0.0), (64, 1.0), (64, 2.0), (256, 5.0))


def _median_run(runs: list[dict[str, float]], key: str) -> dict[str, float]:
    runs = [r for r in runs if not math.isnan(r[key])] or runs  # a run that completed nothing
    mid = statistics.median(r[key] for r in runs)
    return min(runs, key=lambda r: abs(r[key] - mid))


def _metric_sum(score_url: str, prefix: str) -> float:
    """The sum of the server's /metrics samples whose line starts with `prefix`."""
    import httpx

    text = httpx.get(score_url.replace("/v1/score", "/metrics"), timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def _dropped(score_url: str) -> float:
    """Shadow scorings the server dropped (its queue full), from its /metrics."""
    return _metric_sum(score_url, "mlsd_shadow_dropped_total{")


def wait_drained(score_url: str, timeout_s: float = 120.0) -> float:
    """Seconds until the server's prediction log has stored its backlog (from its /metrics,
    `mlsd_prediction_log_buffered`; at once for a server without one).

    A maximum-rate run leaves seconds of records to write; measured while the flusher
    catches up, a half-rate run would time the catching up, not the half rate."""
    import time

    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if _metric_sum(score_url, "mlsd_prediction_log_buffered ") == 0:
            return time.monotonic() - start
        time.sleep(0.2)
    raise RuntimeError(f"{score_url}: the prediction log's backlog did not drain in {timeout_s} s")


def http_benchmarks(
    home: Path,
    onnx_path: Path,
    work: Path,
    progress: Progress,
    *,
    seconds: float,
    repeats: int,
    connections: int,
    server_cpu: int | None,
    client_cpu: int | None,
    servers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every server (or those named, and `bare`) up at once; runs interleaved so machine
    noise hits each alike."""
    unknown = sorted(set(servers or ()) - set(SERVERS))
    if unknown:
        raise ValueError(f"unknown servers {unknown}; known: {', '.join(SERVERS)}")
    chosen = {n: SERVERS[n] for n in SERVERS if servers is None or n in servers or n == "bare"}
    env = {"MLSD_HOME": str(home), "MLSD_BENCH_ONNX": str(onnx_path)}
    script = write_wrk_script(work, N_CUSTOMERS, N_TERMINALS)
    bodies = score_bodies(5000, N_CUSTOMERS, N_TERMINALS)
    max_runs: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    half_runs: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    with ExitStack() as stack:
        urls: dict[str, str] = {}
        task = progress.add_task("starting servers", total=len(chosen))
        for name, (factory, ready, extra) in chosen.items():
            base = stack.enter_context(
                serve(factory, {**env, **extra}, cpu=server_cpu, ready_path=ready)
            )
            urls[name] = base + "/v1/score"
            wrk(urls[name], script, 2, connections, client_cpu)  # warm up
            progress.advance(task)
        task = progress.add_task("max rate (wrk)", total=repeats * len(chosen))
        for _ in range(repeats):
            for name, url in urls.items():
                max_runs[name].append(asdict(wrk(url, script, seconds, connections, client_cpu)))
                progress.advance(task)
        max_rps = {n: _median_run(runs, "rps")["rps"] for n, runs in max_runs.items()}
        rates = {n: 0.5 * max_rps[n] for n in chosen}
        # at mlsd's load: the log's, its writer's and the shadows' cost at equal rate
        for same in ("mlsd_no_log", "mlsd_process_log", "mlsd_shadow", "mlsd_shadow_thread"):
            if same in rates and "mlsd" in rates:
                rates[same] = rates["mlsd"]
        for url in urls.values():
            wait_drained(url)
        task = progress.add_task("half rate (open loop)", total=repeats * len(chosen))
        for _ in range(repeats):
            for name, url in urls.items():
                pid = PIDS[url.removesuffix("/v1/score")]
                cpu = cpu_seconds(pid)
                result = open_loop(url, bodies, rates[name], seconds)
                cpu = cpu_seconds(pid) - cpu  # the server's, its log writer process's
                run = asdict(result)
                run["cpu_us_per_request"] = cpu * 1e6 / max(result.sent - result.errors, 1)
                half_runs[name].append(run)
                progress.advance(task)
        dropped = _dropped(urls["mlsd_shadow"]) if "mlsd_shadow" in urls else None
        thread_dropped = (
            _dropped(urls["mlsd_shadow_thread"]) if "mlsd_shadow_thread" in urls else None
        )
    bare = max_rps["bare"]
    half = {n: _median_run(runs, "p50_ms") for n, runs in half_runs.items()}
    out: dict[str, Any] = {
        "connections": connections,
        "seconds": seconds,
        "repeats": repeats,
        "max": {n: _median_run(runs, "rps") for n, runs in max_runs.items()},
        "ratio_to_bare": {n: max_rps[n] / bare for n in chosen},
        "half_rate": half,
        # the server process's CPU (its threads, its log writer process) per request
        "cpu_us_per_request": {
            n: statistics.median(r["cpu_us_per_request"] for r in runs)
            for n, runs in half_runs.items()
        },
        "p99_median_ms": {
            n: statistics.median(r["p99_ms"] for r in runs) for n, runs in half_runs.items()
        },
        "runs": {"max": max_runs, "half_rate": half_runs},
    }
    if "mlsd" in chosen and "mlsd_no_log" in chosen:
        out["log_overhead_p50"] = half["mlsd"]["p50_ms"] / half["mlsd_no_log"]["p50_ms"] - 1.0
        out["log_overhead_rps"] = 1.0 - max_rps["mlsd"] / max_rps["mlsd_no_log"]
    if "mlsd" in chosen and dropped is not None:
        out["shadow_overhead_p99"] = half["mlsd_shadow"]["p99_ms"] / half["mlsd"]["p99_ms"] - 1.0
        out["shadow_dropped"] = dropped
    if "mlsd" in chosen and thread_dropped is not None:
        out["shadow_thread_overhead_p99"] = (
            half["mlsd_shadow_thread"]["p99_ms"] / half["mlsd"]["p99_ms"] - 1.0
        )
        out["shadow_thread_dropped"] = thread_dropped
    return out


def http_batching(
    home: Path,
    work: Path,
    progress: Progress,
    *,
    seconds: float,
    repeats: int,
    connections: int,
    server_cpu: int | None,
    client_cpu: int | None,
) -> list[dict[str, float]]:
    """mlsd's /v1/score under wrk for each micro-batching setting: all servers up at once,
    runs interleaved, the median run (by req/s) of `repeats` per setting."""
    script = write_wrk_script(work, N_CUSTOMERS, N_TERMINALS)
    runs: dict[tuple[int, float], list[dict[str, float]]] = {s: [] for s in HTTP_BATCHING}
    with ExitStack() as stack:
        urls: dict[tuple[int, float], str] = {}
        task = progress.add_task("starting batching servers", total=len(HTTP_BATCHING))
        for size, delay in HTTP_BATCHING:
            env = {"MLSD_HOME": str(home), "MLSD_BENCH_BATCH": f"{size},{delay}"}
            ready = "/v2/health/ready"
            base = stack.enter_context(serve("mlsd_app", env, cpu=server_cpu, ready_path=ready))
            urls[(size, delay)] = base + "/v1/score"
            wrk(urls[(size, delay)], script, 2, connections, client_cpu)  # warm up
            progress.advance(task)
        task = progress.add_task("HTTP batching curve", total=repeats * len(HTTP_BATCHING))
        for _ in range(repeats):
            for setting, url in urls.items():
                runs[setting].append(asdict(wrk(url, script, seconds, connections, client_cpu)))
                progress.advance(task)
    return [
        {"max_batch_size": size, "max_delay_ms": delay, **_median_run(runs[(size, delay)], "rps")}
        for size, delay in HTTP_BATCHING
    ]
