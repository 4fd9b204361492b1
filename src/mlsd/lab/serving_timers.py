"""Timers for the latency budget: medians of timed calls, `POST /v1/score` through the ASGI
app and over a loopback socket, requests in flight, and the service the lab times."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np


def p50_us(fn: Callable[[], object], n: int) -> float:
    """Median µs of `n` timed calls (after 20 untimed ones)."""
    for _ in range(20):
        fn()
    times = []
    for _ in range(n):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e6


async def p50_us_async(fn: Callable[[], Awaitable[object]], n: int) -> float:
    for _ in range(20):
        await fn()
    times = []
    for _ in range(n):
        began = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e6


def asgi_post(app: Any, body: bytes) -> Callable[[], Awaitable[None]]:
    """One `POST /v1/score` through the ASGI app, as uvicorn would call it (no socket)."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/score",
        "raw_path": b"/v1/score",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def call() -> None:
        given = False

        async def receive() -> dict[str, Any]:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client stays connected
            return {"type": "http.disconnect"}

        status: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(dict(scope), receive, send)
        if status != [200]:
            raise RuntimeError(f"/v1/score answered {status}")

    return call


class Bodies:
    """One-transaction bodies of real customers and terminals, each a new transaction id."""

    def __init__(self, customers: int, at: str, seed: int, count: int) -> None:
        import json

        rng = np.random.default_rng(seed)
        self._bodies = [
            json.dumps(
                {
                    "transaction_id": 10_000_000 + i,
                    "customer_id": int(rng.integers(customers)),
                    "terminal_id": int(rng.integers(2 * customers)),
                    "amount": float(round(rng.gamma(2.0, 30.0), 2)),
                    "timestamp": at,
                }
            ).encode()
            for i in range(count)
        ]
        self._next = 0

    def __call__(self) -> bytes:
        self._next = (self._next + 1) % len(self._bodies)
        return self._bodies[self._next]


def service_for(settings: Any, store: Any, registry: Any, *, batching: Any, log: Any) -> Any:
    from mlsd.inference.cache import MemoryCache
    from mlsd.inference.host import ModelHost
    from mlsd.serving.service import ServeOptions, Service

    host = ModelHost(registry, served_views=store.view_versions)
    options = ServeOptions(batching=batching, watch_aliases=False)
    service = Service(
        settings,
        host,
        options=options,
        features=store,
        cache=MemoryCache(100_000, 300.0),
        prediction_log=log,
    )
    service.load_all()
    return service


def socket_p50_us(app: Any, bodies: Bodies, n: int) -> float:
    """Median µs of a keep-alive `POST /v1/score` over loopback to uvicorn (client included)."""
    import http.client

    from mlsd.serving.server import BackgroundServer

    with BackgroundServer(app) as server:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
        headers = {"content-type": "application/json"}

        def post() -> None:
            connection.request("POST", "/v1/score", bodies(), headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"/v1/score answered {response.status}")

        try:
            return p50_us(post, n)
        finally:
            connection.close()


async def concurrent_us(service: Any, requests: list[Any], clients: int, rounds: int) -> float:
    """Server µs per request with `clients` requests in flight (median over rounds)."""
    from mlsd.inference.observers import ScoringRequest

    per = []
    for r in range(rounds):
        chunk = [requests[(r * clients + i) % len(requests)] for i in range(clients)]
        began = time.perf_counter()
        await asyncio.gather(
            *(service.score(ScoringRequest(f"c{i}", "score", txs)) for i, txs in enumerate(chunk))
        )
        per.append((time.perf_counter() - began) / clients)
    return statistics.median(per) * 1e6
