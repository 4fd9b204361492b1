"""Start a benchmark app under uvicorn (one worker, pinned to one core) and stop it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import httpx

#: base URL -> process id of each server `serve` runs now (for its CPU time).
PIDS: dict[str, int] = {}


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a live process and of its live descendants (the
    prediction log's writer process): 0 for what is gone."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", "rb") as children:
                total += sum(cpu_seconds(int(c)) for c in children.read().split())
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        pass
    return total


def free_port() -> int:
    """A free TCP port on the loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(
    factory: str,
    env: dict[str, str],
    *,
    cpu: int | None = 0,
    ready_path: str = "/openapi.json",
    timeout_s: float = 120.0,
) -> Iterator[str]:
    """Run `benchmarks.serving.servers:<factory>`; yields its base URL once `ready_path` is 200."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", f"benchmarks.serving.servers:{factory}"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--log-level", "warning", "--no-access-log"]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    # stderr to a file, not a pipe: a chatty server never blocks on a full pipe
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, **env, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        PIDS[base] = proc.pid  # taskset execs uvicorn: the same process
        try:
            yield _wait_ready(proc, log, base, ready_path, timeout_s, factory)
        finally:
            PIDS.pop(base, None)
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(
    proc: subprocess.Popen[str],
    log: IO[str],
    url: str,
    ready_path: str,
    timeout_s: float,
    factory: str,
) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{factory} exited: {log.read()[-2000:]}")
        try:
            if httpx.get(url + ready_path, timeout=1.0).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{factory} not ready after {timeout_s:.0f} s")
        time.sleep(0.1)
