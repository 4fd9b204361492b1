"""Each fault under open-loop load against a real `mlsd serve`: latency during it, time to
full service after it, rows lost. Faults come from the tests' TCP proxy
(`tests/faults/proxy.py`) in front of the shared Redis and PostgreSQL, or from `kill -9`."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis
from benchmarks.faults.servers import Process, job_file, prepare
from tests.faults.load import Answer, open_loop
from tests.faults.proxy import FaultProxy

from mlsd.predlog import open_reader
from mlsd.registry import Registry
from mlsd.settings import Settings

FAULT_AT, FAULT_S, AFTER_S = 1.0, 2.0, 3.0


@dataclass(frozen=True)
class Row:
    """One fault's figures (NaN where a figure does not apply)."""

    fault: str
    requests: int
    failed: int
    p50_ms: float
    p99_ms: float
    recovery_s: float
    lost: int
    note: str = ""


def _ms(answers: list[Answer], q: float) -> float:
    return float(np.percentile([a.latency_s for a in answers], q) * 1000) if answers else np.nan


def _lost(settings: Settings, answers: list[Answer]) -> int:
    logged = set(open_reader(settings).read()["request_id"])
    return len({a.request_id for a in answers if a.status == 200} - logged)


def _proxy(url: str) -> FaultProxy:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return FaultProxy(parts.hostname or "127.0.0.1", parts.port or 0).start()


def _drop_prefix(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def redis_fault(work: Path, redis_url: str, kind: str, rate: float) -> Row:
    """Online store and prediction cache on Redis; Redis stalled (`stall`) or gone
    (`refuse`: connections reset, new ones refused) for FAULT_S seconds."""
    proxy = _proxy(redis_url)
    prefix = f"mlsdbench:{uuid.uuid4().hex[:8]}:"
    through = proxy.url(redis_url)
    home = work / f"redis-{kind}"
    settings = Settings(home=home, online_store=through, cache=through, redis_prefix=prefix)
    marks: dict[str, float] = {}

    def fault(t: float) -> None:
        if t >= FAULT_AT and "on" not in marks:
            proxy.stall() if kind == "stall" else proxy.refuse()
            marks["on"] = time.monotonic()
        elif t >= FAULT_AT + FAULT_S and "off" not in marks:
            proxy.resume()
            marks["off"] = time.monotonic()

    try:
        prepare(settings)
        server = Process(settings, "serve").ready()
        try:
            open_loop(server.url, rate, 1.0, tag="warm")
            answers = open_loop(server.url, rate, FAULT_AT + FAULT_S + AFTER_S, fault, tag=kind)
        finally:
            proxy.resume()
            server.stop()
        on, off = marks["on"], marks["off"]
        during = [a for a in answers if on <= a.due < off]
        healed = next((a.due - off for a in answers if a.due >= off and not a.degraded), np.nan)
        flagged = sum(bool(a.degraded) for a in during) / max(1, len(during))
        return Row(
            f"Redis {'stalled' if kind == 'stall' else 'down'} {FAULT_S:g} s (cache + store)",
            len(answers), sum(a.status != 200 for a in answers), _ms(during, 50),
            _ms(during, 99), healed, _lost(Settings(home=home), answers),
            f"{flagged:.0%} of answers during it flagged degraded",
        )  # fmt: skip
    finally:
        proxy.close()
        _drop_prefix(redis_url, prefix)


def postgres_fault(work: Path, postgres_url: str, rate: float) -> Row:
    """Registry and prediction log on PostgreSQL, gone for FAULT_S seconds; the alias is
    moved to version 2 while it is gone (recovery: until v2 answers)."""
    import psycopg

    schema = f"mlsdbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    proxy = _proxy(postgres_url)
    home = work / "postgres"
    direct = f"{postgres_url}?schema={schema}"
    through = f"{proxy.url(postgres_url)}?schema={schema}"
    settings = Settings(home=home, registry_db=through, prediction_log=through)
    marks: dict[str, float] = {}
    try:
        prepare(Settings(home=home, registry_db=direct), versions=2)
        admin = Registry.open(Settings(home=home, registry_db=direct))

        def fault(t: float) -> None:
            if t >= FAULT_AT and "on" not in marks:
                proxy.refuse()
                marks["on"] = time.monotonic()
            elif t >= FAULT_AT + 0.5 and "moved" not in marks:
                admin.set_alias("fraud", "champion", 2, reason="bench", actor="bench")
                marks["moved"] = time.monotonic()
            elif t >= FAULT_AT + FAULT_S and "off" not in marks:
                proxy.resume()
                marks["off"] = time.monotonic()

        server = Process(settings, "serve").ready()
        try:
            open_loop(server.url, rate, 1.0, tag="warm")
            answers = open_loop(server.url, rate, FAULT_AT + FAULT_S + AFTER_S, fault, tag="pg")
        finally:
            proxy.resume()
            server.stop()
            admin.close()
        on, off = marks["on"], marks["off"]
        during = [a for a in answers if on <= a.due < off]
        caught_up = next((a.due - off for a in answers if a.version == 2), np.nan)
        lost = _lost(Settings(home=home, prediction_log=direct), answers)
        return Row(
            f"PostgreSQL down {FAULT_S:g} s (registry + log)", len(answers),
            sum(a.status != 200 for a in answers), _ms(during, 50), _ms(during, 99),
            caught_up, lost, "recovery: the alias moved meanwhile is served",
        )  # fmt: skip
    finally:
        proxy.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _job(url: str, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
    return body


def big_job(work: Path, redis_url: str, rows: int, rate: float, seconds: float) -> list[Row]:
    """Online latency idle, then while a `rows`-row job runs: in the serving process, then
    in an `mlsd worker` process beside `mlsd serve --no-job-worker`."""
    out: list[Row] = []
    for mode in ("in the server", "in mlsd worker"):
        prefix = f"mlsdbench:{uuid.uuid4().hex[:8]}:"
        home = work / f"job-{mode.split()[-1]}"
        settings = Settings(
            home=home, job_queue=redis_url, redis_prefix=prefix, job_max_file_rows=rows
        )
        prepare(settings)
        path = job_file(home, rows)
        worker = None
        if mode == "in the server":
            server = Process(settings, "serve").ready()
        else:
            server = Process(settings, "serve", "--no-job-worker").ready()
            worker = Process(settings, "worker")
        try:
            open_loop(server.url, rate, 1.0, tag="warm")
            idle = open_loop(server.url, rate, seconds, tag="idle")
            job_id = httpx.post(f"{server.url}/v1/jobs", json={"path": path}, timeout=30).json()[
                "job_id"
            ]
            deadline = time.monotonic() + 120
            while _job(server.url, job_id)["done"] == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            started, done_before = time.monotonic(), _job(server.url, job_id)["done"]
            busy = open_loop(server.url, rate, seconds, tag="busy")
            speed = (_job(server.url, job_id)["done"] - done_before) / (time.monotonic() - started)
        finally:
            server.stop(kill=True)
            if worker is not None:
                worker.stop(kill=True)
            _drop_prefix(redis_url, prefix)
        ratio = _ms(busy, 99) / _ms(idle, 99)
        note = (
            f"idle p50 {_ms(idle, 50):.1f} / p99 {_ms(idle, 99):.1f} ms: p99 x{ratio:.1f}; "
            f"job at {speed:,.0f} rows/s"
        )
        failed = sum(a.status != 200 for a in busy)
        row = Row(f"{rows:,}-row job {mode}", len(busy), failed, _ms(busy, 50), _ms(busy, 99),
                  np.nan, 0, note)  # fmt: skip
        out.append(row)
    return out


def kill_mid_job(work: Path, redis_url: str, rows: int) -> Row:
    """`kill -9` of the server midway through a job, then a restart on the same folder:
    seconds from the restart being ready to the job running again, job rows logged twice."""
    prefix = f"mlsdbench:{uuid.uuid4().hex[:8]}:"
    home = work / "kill"
    settings = Settings(home=home, job_queue=redis_url, redis_prefix=prefix)
    prepare(settings)
    path = job_file(home, rows)
    server = Process(settings, "serve").ready()
    try:
        job_id = httpx.post(f"{server.url}/v1/jobs", json={"path": path}, timeout=30).json()[
            "job_id"
        ]
        while _job(server.url, job_id)["done"] < rows // 10:
            time.sleep(0.01)
        killed_at_done = _job(server.url, job_id)["done"]
    finally:
        server.stop(kill=True)
    server = Process(settings, "serve", port=server.port).ready()
    try:
        ready = time.monotonic()
        while (status := _job(server.url, job_id))["attempts"] < 2:
            time.sleep(0.01)
        requeued_s = time.monotonic() - ready
        while status["state"] not in ("done", "failed"):
            time.sleep(0.05)
            status = _job(server.url, job_id)
    finally:
        server.stop()
        _drop_prefix(redis_url, prefix)
    logged = open_reader(Settings(home=home)).read()["request_id"]
    mine = logged[logged.str.startswith(f"{job_id}:")]
    return Row(
        f"kill -9 mid-job ({rows:,} rows, at {killed_at_done:,})", rows, 0, np.nan, np.nan,
        requeued_s, rows - mine.nunique(),
        f"job {status['state']} (attempt {status['attempts']}), "
        f"{len(mine) - mine.nunique()} job rows logged twice",
    )  # fmt: skip
