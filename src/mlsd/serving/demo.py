"""The serving step of `mlsd demo`: start the service, send it traffic, report live figures."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlsd.errors import UnavailableError
from mlsd.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console


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


class _Traffic:
    """Client threads posting transactions to `/v1/score` until told to stop."""

    def __init__(self, url: str, source: Iterator[dict[str, Any]], headers: dict[str, str]):
        self.url = url
        self.source = source
        self.headers = headers
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.verdicts: list[str] = []
        self.failed = 0
        self.degraded = 0
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, clients: int) -> None:
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)

    def _run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=5.0, headers=self.headers) as http:
            while not self.stop.is_set():
                with self.lock:
                    body = next(self.source, None)
                if body is None:
                    return
                started = time.perf_counter()
                response = http.post("/v1/score", json=body)
                took = time.perf_counter() - started
                with self.lock:
                    self.latencies.append(took)
                    if response.is_success:
                        result = response.json()["results"][0]
                        self.verdicts.append(result["decision"])
                        self.degraded += int(result["degraded"])
                    else:
                        self.failed += 1

    def figures(self, url: str, elapsed: float, model: str, metrics: str) -> DemoFigures:
        with self.lock:
            lat = np.array(self.latencies) * 1000.0 if self.latencies else np.zeros(1)
            n, verdicts = len(self.latencies), list(self.verdicts)
            failed, degraded = self.failed, self.degraded
        hits, misses = _cache_counts(metrics)
        return DemoFigures(
            url=url,
            seconds=round(elapsed, 2),
            requests=n,
            failed=failed,
            requests_per_s=round(n / elapsed, 1) if elapsed else 0.0,
            p50_ms=round(float(np.percentile(lat, 50)), 2),
            p99_ms=round(float(np.percentile(lat, 99)), 2),
            fraud_rate=round(verdicts.count("fraud") / len(verdicts), 4) if verdicts else 0.0,
            cache_hit_rate=round(hits / (hits + misses), 4) if hits + misses else 0.0,
            degraded=degraded,
            model=model,
        )


def _servable(settings: Settings, ref: str, console: Console | None) -> str:
    """`ref`, or the latest version of its model when its alias is not set (yet)."""
    from mlsd.inference.host import parse_ref
    from mlsd.registry import Registry

    name, alias, _ = parse_ref(ref)
    if alias is None:
        return ref
    with Registry.open(settings) as registry:
        if alias in registry.aliases(name):
            return ref
        latest = registry.latest(name).version
    if console is not None:
        console.print(f"[yellow]{name}@{alias} is not set: serving the latest, {name}/{latest}[/]")
    return f"{name}/{latest}"


def _wait_ready(url: str, server: Any) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while True:
        ready = httpx.get(f"{url}/v2/health/ready", timeout=5.0)
        if ready.is_success:
            return
        if "error" in ready.json() or time.monotonic() > deadline:
            server.stop()
            raise UnavailableError(f"the service did not get ready: {ready.json()}")
        time.sleep(0.05)


def demo_step(
    settings: Settings,
    seconds: float | None = 5.0,
    *,
    console: Console | None = None,
    dataset: Path | None = None,
    model: str = "fraud@champion",
    clients: int = 4,
) -> dict[str, Any]:
    """Serve `model` on a free port and send it traffic for `seconds` (None: until Ctrl-C).

    Traffic replays `dataset` (a dataset folder) or random valid transactions. With a
    `console`, prints the URL and live figures every second. Returns the final figures.
    """
    import httpx

    from mlsd.serving.app import create_app
    from mlsd.serving.server import BackgroundServer
    from mlsd.serving.service import ServeOptions

    model = _servable(settings, model, console)
    options = ServeOptions(models=(model,), tune_process=True)  # as `mlsd serve`
    server = BackgroundServer(create_app(settings, options=options))
    server.start()
    _wait_ready(server.url, server)
    if console is not None:
        console.print(
            f"serving [bold]{model}[/] at [link]{server.url}[/] (docs: {server.url}/docs)"
        )
    headers = {"x-api-key": settings.api_key} if settings.api_key else {}
    source = _dataset_transactions(dataset) if dataset else _random_transactions(settings.seed)
    traffic = _Traffic(server.url, source, headers)
    began = time.monotonic()
    traffic.start(clients)
    try:
        while seconds is None or time.monotonic() - began < seconds:
            time.sleep(
                1.0 if seconds is None else min(1.0, max(0.0, seconds - (time.monotonic() - began)))
            )
            if console is not None:
                live = traffic.figures(server.url, time.monotonic() - began, model, "")
                console.print(
                    f"  {live.requests:>7,} requests  {live.requests_per_s:>7,.0f}/s  "
                    f"p50 {live.p50_ms:.1f} ms  p99 {live.p99_ms:.1f} ms  "
                    f"fraud {live.fraud_rate:.1%}  failed {live.failed}"
                )
    finally:
        traffic.join()
        elapsed = time.monotonic() - began
        metrics = httpx.get(f"{server.url}/metrics", timeout=5.0).text
        server.stop()
    return asdict(traffic.figures(server.url, elapsed, model, metrics))


def _cache_counts(metrics: str) -> tuple[float, float]:
    hits = misses = 0.0
    for line in metrics.splitlines():
        if line.startswith("mlsd_cache_hits_total{"):
            hits += float(line.rsplit(" ", 1)[1])
        elif line.startswith("mlsd_cache_misses_total{"):
            misses += float(line.rsplit(" ", 1)[1])
    return hits, misses
