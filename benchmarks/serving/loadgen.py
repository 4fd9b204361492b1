"""Load generators: wrk (closed loop, for the maximum rate) and an open-loop asyncio client.

The open-loop client sends at a fixed rate and times each request from when it
was *due*, not when a connection became free, so a stalled server shows in the
latency (no coordinated omission). A stalled *client* shows there too, so it runs on
uvloop with the garbage collector off for the run: on asyncio's own loop, with the
collector on, the bare endpoint's p99 at half its rate was 10-120 ms on a quiet machine,
the client's pauses rather than the server's.
"""

from __future__ import annotations

import asyncio
import gc
import math
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlsd.serving.testing import NOW

WRK_SCRIPT = """
math.randomseed(%(seed)d)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{"transaction_id":%%d,"customer_id":%%d,"terminal_id":%%d,"amount":%%.2f,"timestamp":"%(ts)s"}',
    n, math.random(0, %(customers)d), math.random(0, %(terminals)d), math.random() * 300)
  return wrk.format(nil, "%(path)s", nil, body)
end
"""


@dataclass(frozen=True)
class WrkResult:
    """Requests per second and latency percentiles (ms) of one wrk run."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        return math.nan
    return float(match.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[match.group(2)]


def _find(pattern: str, out: str) -> str | None:
    match = re.search(pattern, out)
    return match.group(1) if match else None


def write_wrk_script(folder: Path, customers: int, terminals: int, path: str = "/v1/score") -> Path:
    """The Lua script making a random valid transaction per request."""
    script = folder / "score.lua"
    ts = NOW.isoformat().replace("+00:00", "Z")
    script.write_text(
        WRK_SCRIPT
        % {
            "seed": 7,
            "ts": ts,
            "customers": customers - 1,
            "terminals": terminals - 1,
            "path": path,
        }
    )
    return script


def wrk(url: str, script: Path, seconds: float, connections: int, cpu: int | None) -> WrkResult:
    """One closed-loop wrk run (one thread)."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    cmd = [binary, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    cmd += ["-s", str(script), url]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    # a run that completed nothing prints no latency lines: NaN, not a crash
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out) or "nan")
    # the distribution lines only ("Latency ... 75.50%" in the stats line must not match)
    p50 = _ms(_find(r"(?m)^\s+50%\s+(\S+)", out) or "")
    p99 = _ms(_find(r"(?m)^\s+99%\s+(\S+)", out) or "")
    bad = _find(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    timeouts = _find(r"Socket errors:.*?timeout (\d+)", out)
    errors = int(bad or 0) + int(timeouts or 0)
    return WrkResult(rps, p50, p99, errors)


def score_bodies(n: int, customers: int, terminals: int, seed: int = 3) -> list[bytes]:
    """`n` distinct valid `/v1/score` bodies."""
    rng = np.random.default_rng(seed)
    ts = NOW.isoformat().replace("+00:00", "Z")
    return [
        (
            f'{{"transaction_id":{i},"customer_id":{int(rng.integers(customers))},'
            f'"terminal_id":{int(rng.integers(terminals))},'
            f'"amount":{rng.random() * 300:.2f},"timestamp":"{ts}"}}'
        ).encode()
        for i in range(n)
    ]


@dataclass(frozen=True)
class OpenLoopResult:
    """Latencies (ms) of an open-loop run at `rate` requests/s, and what went wrong."""

    rate: float
    sent: int
    p50_ms: float
    p99_ms: float
    errors: int
    achieved_rps: float


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _open_loop(
    host: str, port: int, path: str, bodies: list[bytes], rate: float, seconds: float, conns: int
) -> OpenLoopResult:
    requests = [
        b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), host.encode(), len(b), b)
        for b in bodies
    ]
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0
    index = 0

    async def worker() -> None:
        nonlocal errors, index
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (due := await queue.get()) is not None:
                writer.write(requests[index % len(requests)])
                index += 1
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - due)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(conns)]
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(due)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1000.0
    return OpenLoopResult(
        rate=rate,
        sent=total,
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
        errors=errors,
        achieved_rps=len(latencies) / elapsed,
    )


def open_loop(
    url: str, bodies: list[bytes], rate: float, seconds: float, conns: int = 32
) -> OpenLoopResult:
    """Send `rate` requests/s for `seconds` over `conns` keep-alive connections."""
    match = re.fullmatch(r"http://([^:/]+):(\d+)(/.*)", url)
    if match is None:
        raise ValueError(f"need http://host:port/path, got {url}")
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        runner = asyncio.run
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        return runner(_open_loop(host, port, path, bodies, rate, seconds, conns))
    finally:
        if collecting:
            gc.enable()
