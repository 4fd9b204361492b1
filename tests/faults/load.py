"""Open-loop load for the fault tests: requests sent on a schedule, each timed from when
it was due (a stalled server shows in the latency), with what each answer said.

A raw HTTP/1.1 client on keep-alive connections (as `benchmarks/serving/loadgen.py`): at a
few hundred requests in flight httpx's pool spends more CPU than the server, and the
test would measure its client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from mlsd.serving.testing import sample_transaction


@dataclass(frozen=True)
class Answer:
    """One request: when it was due (monotonic s), its latency, status, degraded flag, id,
    and the model version that answered."""

    due: float
    latency_s: float
    status: int
    degraded: bool | None
    request_id: str
    version: int | None = None


def _request(host: str, i: int, tag: str) -> tuple[str, bytes]:
    rid = f"{tag}-{i}"
    body = json.dumps(sample_transaction(transaction_id=i + 1, customer_id=1 + i % 2)).encode()
    head = (
        f"POST /v1/score HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"x-request-id: {rid}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return rid, head.encode() + body


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length) if length else b""


async def _run(
    url: str, rate: float, seconds: float, during: Callable[[float], None], conns: int, tag: str
) -> list[Answer]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    answers: list[Answer] = []
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (job := await queue.get()) is not None:
                i, due = job
                rid, raw = _request(host, i, tag)
                try:
                    writer.write(raw)
                    status, body = await _response(reader)
                except (OSError, asyncio.IncompleteReadError):
                    answers.append(Answer(due, time.monotonic() - due, 0, None, rid))
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latency = time.monotonic() - due
                result = json.loads(body)["results"][0] if status == 200 else {}
                degraded, version = result.get("degraded"), result.get("version")
                answers.append(Answer(due, latency, status, degraded, rid, version))
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(conns)]
    start = time.monotonic() + 0.05
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        during(time.monotonic() - start)
        queue.put_nowait((i, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return sorted(answers, key=lambda a: a.due)


def open_loop(
    url: str,
    rate: float,
    seconds: float,
    during: Callable[[float], None] = lambda t: None,
    conns: int = 32,
    tag: str = "load",
) -> list[Answer]:
    """`rate` requests/s to `POST /v1/score` for `seconds` over `conns` connections;
    `during(t)` is called before each send with the seconds since the start (to inject
    faults on the schedule); request ids are `{tag}-{n}`."""
    return asyncio.run(_run(url, rate, seconds, during, conns, tag))


def p99_ms(answers: list[Answer]) -> float:
    """The 99th percentile latency, in ms."""
    return float(np.percentile([a.latency_s for a in answers], 99) * 1000.0)
