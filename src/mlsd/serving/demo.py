"""The serving step of `mlsd demo`: start the service, send it traffic, report live figures."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.errors import UnavailableError
from mlsd.settings import Settings


@dataclass(frozen=True)
class DemoFigures:
    """What the demo prints about the service after a few seconds of traffic."""

    url: str
    seconds: float
    requests: int
    failed: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    fraud_rate: float
    cache_hit_rate: float
    degraded: int
    model: str


def _random_transactions(seed: int) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    start = datetime.now(UTC)
    for i in itertools.count(1):
        yield {
            "transaction_id": i,
            "customer_id": int(rng.integers(0, 5000)),
            "terminal_id": int(rng.integers(0, 10000)),
            "amount": round(float(rng.gamma(2.0, 30.0)), 2),
            "timestamp": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
        }


def _dataset_transactions(folder: Path) -> Iterator[dict[str, Any]]:
    from mlsd.data import schema
    from mlsd.data.live import stream

    for event in stream(folder, speedup=math.inf):
        ts = event[schema.TX_DATETIME]
        yield {
            "transaction_id": int(event[schema.TRANSACTION_ID]),
            "customer_id": int(event[schema.CUSTOMER_ID]),
            "terminal_id": int(event[schema.TERMINAL_ID]),
            "amount": float(event[schema.TX_AMOUNT]),
            "timestamp": ts.isoformat() if hasattr(ts, "isoformat") else str(ts),
        }


def demo_step(
    settings: Settings,
    seconds: float = 5.0,
    *,
    dataset: Path | None = None,
    model: str = "fraud@champion",
    clients: int = 4,
    keep_running: bool = False,
) -> tuple[DemoFigures, Any]:
    """Serve `model` on a free port, replay `dataset` (or random transactions) for `seconds`.

    Returns the figures and the running server when `keep_running` (call `.stop()` on it),
    else None in its place.
    """
    import httpx

    from mlsd.serving.app import create_app
    from mlsd.serving.server import BackgroundServer
    from mlsd.serving.service import ServeOptions

    server = BackgroundServer(create_app(settings, options=ServeOptions(models=(model,))))
    server.start()
    deadline = time.monotonic() + 60
    headers = {"x-api-key": settings.api_key} if settings.api_key else {}
    while True:
        ready = httpx.get(f"{server.url}/v2/health/ready", timeout=5.0)
        if ready.is_success:
            break
        if "error" in ready.json() or time.monotonic() > deadline:
            server.stop()
            raise UnavailableError(f"the service did not get ready: {ready.json()}")
        time.sleep(0.05)
    source = _dataset_transactions(dataset) if dataset else _random_transactions(settings.seed)
    lock = threading.Lock()
    latencies: list[float] = []
    verdicts: list[str] = []
    failures = [0]
    degraded = [0]
    stop_at = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=5.0, headers=headers) as http:
            while time.monotonic() < stop_at:
                with lock:
                    body = next(source, None)
                if body is None:
                    return
                started = time.perf_counter()
                response = http.post("/v1/score", json=body)
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
                    if response.is_success:
                        result = response.json()["results"][0]
                        verdicts.append(result["decision"])
                        degraded[0] += int(result["degraded"])
                    else:
                        failures[0] += 1

    began = time.monotonic()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    hits, misses = _cache_counts(httpx.get(f"{server.url}/metrics", timeout=5.0).text)
    lat = np.array(latencies) * 1000.0 if latencies else np.zeros(1)
    figures = DemoFigures(
        url=server.url,
        seconds=round(elapsed, 2),
        requests=len(latencies),
        failed=failures[0],
        requests_per_s=round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        p50_ms=round(float(np.percentile(lat, 50)), 2),
        p99_ms=round(float(np.percentile(lat, 99)), 2),
        fraud_rate=round(verdicts.count("fraud") / len(verdicts), 4) if verdicts else 0.0,
        cache_hit_rate=round(hits / (hits + misses), 4) if hits + misses else 0.0,
        degraded=degraded[0],
        model=model,
    )
    if keep_running:
        return figures, server
    server.stop()
    return figures, None


def _cache_counts(metrics: str) -> tuple[float, float]:
    hits = misses = 0.0
    for line in metrics.splitlines():
        if line.startswith("mlsd_cache_hits_total{"):
            hits += float(line.rsplit(" ", 1)[1])
        elif line.startswith("mlsd_cache_misses_total{"):
            misses += float(line.rsplit(" ", 1)[1])
    return hits, misses
