"""What the prediction log adds to a scoring call, in process (no HTTP noise).

`log_cost`: two services on the same data folder, one with the Parquet prediction
log and one without, score the same transactions one at a time; blocks of calls
alternate between them so machine noise hits both alike. The log's cost is the
ratio of the p50 latencies (target: under 10 %).

`append_cost`: what one `append` of one scoring request's record costs the hot path,
with the journal (one `os.write` per call, so a `kill -9` loses nothing answered) and
without it; blocks alternate between two logs, both flushing in the background as a
server's does. Medians, in µs.

`flusher_cost`: what storing the records costs the serving process off the scoring path,
with the Parquet log written by its flusher thread (`MLSD_PREDICTION_LOG_WRITER=thread`)
and by its writer process (`process`): both logs take the same blocks of 8 one-row
requests, as a server's loop ticks append them, and flush every second; the flusher
thread's CPU time (what holds the GIL the event loop needs, or waits on it) and the
writer process's, per 1,000 records.

.venv/bin/python -m benchmarks.serving.log_cost [calls]   (append cost, then flusher cost)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from benchmarks.serving.fixture import N_CUSTOMERS, N_TERMINALS


def _transactions(n: int) -> list[Any]:
    from mlsd.data.transaction import Transaction
    from mlsd.serving.testing import NOW

    rng = np.random.default_rng(5)
    return [
        Transaction(
            transaction_id=i,
            customer_id=int(rng.integers(N_CUSTOMERS)),
            terminal_id=int(rng.integers(N_TERMINALS)),
            amount=float(round(rng.random() * 300, 2)),
            timestamp=NOW,
        )
        for i in range(n)
    ]


def log_cost(home: Path, calls: int = 4000, block: int = 200) -> dict[str, float]:
    """p50/p99 (µs) of one-transaction scoring calls with and without the log."""
    from mlsd.inference.batcher import BatchConfig
    from mlsd.inference.observers import ScoringRequest
    from mlsd.serving.app import build_service
    from mlsd.serving.service import ServeOptions
    from mlsd.settings import Settings

    settings = Settings(home=home)
    services = {
        name: build_service(
            settings,
            ServeOptions(
                models=("fraud@champion",),
                watch_aliases=False,
                batching=BatchConfig(1, -1.0),
                cache_predictions=False,  # every call must reach the model and the log
                log_predictions=name == "log",
            ),
        )
        for name in ("log", "no_log")
    }
    for service in services.values():
        service.load_all()
    txs = _transactions(calls)
    timings: dict[str, list[float]] = {name: [] for name in services}

    async def run() -> None:
        for service in services.values():  # warm up
            for tx in txs[:50]:
                await service.score(ScoringRequest("warm", "score", [tx]))
        for start in range(0, calls, block):
            for name, service in services.items():
                for tx in txs[start : start + block]:
                    began = time.perf_counter()
                    await service.score(ScoringRequest(f"r{tx.transaction_id}", "score", [tx]))
                    timings[name].append(time.perf_counter() - began)

    try:
        asyncio.run(run())
    finally:
        for service in services.values():
            service.close()
    us = {name: np.array(t) * 1e6 for name, t in timings.items()}
    out = {
        f"{name}_{q}_us": float(np.percentile(v, p))
        for name, v in us.items()
        for q, p in (("p50", 50), ("p99", 99))
    }
    out["overhead_p50"] = out["log_p50_us"] / out["no_log_p50_us"] - 1.0
    out["calls"] = float(calls)
    return out


def append_cost(folder: Path, calls: int = 20_000, block: int = 500) -> dict[str, float]:
    """Median and p99 (µs) of `append([record])` with and without the journal."""
    from mlsd.predlog import ParquetPredictionLog, PredictionRecord

    names = tuple(f"feature_{i}" for i in range(15))  # one shared tuple, as the scorer's
    rng = np.random.default_rng(3)
    rows = rng.random((calls, len(names))).tolist()
    logs = {
        "journal": ParquetPredictionLog(folder / "journal", compact_every_s=None),
        "no_journal": ParquetPredictionLog(
            folder / "no_journal", compact_every_s=None, journal=False
        ),
    }
    timings: dict[str, list[float]] = {name: [] for name in logs}
    try:
        for start in range(0, calls, block):
            for name, plog in logs.items():
                for i in range(start, min(start + block, calls)):
                    now = datetime.now(UTC)
                    record = PredictionRecord(  # as the scorer builds it: positional
                        f"r{i}", now, "fraud", "3", rows[i], 0.1, "legit", 0.5, 1.2, False,
                        names, "score", "", i, 7, 9, now,
                    )  # fmt: skip
                    began = time.perf_counter()
                    plog.append([record])
                    timings[name].append(time.perf_counter() - began)
    finally:
        for plog in logs.values():
            plog.close()
    out: dict[str, float] = {}
    for name, t in timings.items():
        us = np.array(t) * 1e6
        out[f"{name}_p50_us"] = float(np.median(us))
        out[f"{name}_p99_us"] = float(np.percentile(us, 99))
    out["journal_added_p50_us"] = out["journal_p50_us"] - out["no_journal_p50_us"]
    out["calls"] = float(calls)
    return out


def _thread_cpu(thread: Any) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def flusher_cost(
    folder: Path, seconds: float = 10.0, rate: float = 4_000.0, rounds: int = 2
) -> dict[str, float]:
    """Per 1,000 records, CPU ms of the flusher thread and of the writer process, thread
    writer against process writer, in alternating phases (`rate` records/s, `seconds`
    per writer in all); and the main thread's lateness out of its sleeps between appends
    (p99, max, ms): what a loop waits for the GIL a background thread holds."""
    import statistics

    from benchmarks.serving.launch import cpu_seconds

    from mlsd.predlog import ParquetPredictionLog
    from mlsd.predlog.block import RecordBlock
    from mlsd.serving.tuning import SWITCH_INTERVAL_S

    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as a tuned server
    names = tuple(f"feature_{i}" for i in range(15))
    rng = np.random.default_rng(4)
    writers = ("thread", "process")
    logs = {w: ParquetPredictionLog(folder / w, compact_every_s=None, writer=w) for w in writers}
    tick, rows = 8 / rate, 8
    appended = dict.fromkeys(writers, 0)
    cpu = dict.fromkeys(writers, 0.0)
    child = dict.fromkeys(writers, 0.0)
    late: dict[str, list[float]] = {w: [] for w in writers}
    try:
        for plog in logs.values():  # the writer process started (imports) before the clock
            plog.append(_block(RecordBlock, names, rng, rows, 0))
            plog.flush()
        for _ in range(rounds):
            for writer, plog in logs.items():
                thread0, child0 = _thread_cpu(plog._thread), _child_cpu(plog, cpu_seconds)
                began = time.monotonic()
                while time.monotonic() - began < seconds / rounds:
                    plog.append(_block(RecordBlock, names, rng, rows, appended[writer]))
                    appended[writer] += rows
                    asked = time.perf_counter()
                    time.sleep(tick)
                    late[writer].append(time.perf_counter() - asked - tick)
                plog.flush()
                cpu[writer] += _thread_cpu(plog._thread) - thread0
                child[writer] += _child_cpu(plog, cpu_seconds) - child0
    finally:
        for plog in logs.values():
            plog.close()
    out: dict[str, float] = {}
    for writer in writers:
        out[f"{writer}_flusher_ms_per_1000"] = cpu[writer] * 1e6 / appended[writer]
        out[f"{writer}_child_ms_per_1000"] = child[writer] * 1e6 / appended[writer]
        ms = sorted(x * 1e3 for x in late[writer])
        out[f"{writer}_late_p99_ms"] = ms[int(0.99 * (len(ms) - 1))]
        out[f"{writer}_late_max_ms"] = ms[-1]
        out[f"{writer}_late_median_ms"] = statistics.median(ms)
    out["records"] = float(sum(appended.values()))
    return out


def _child_cpu(plog: Any, cpu_seconds: Any) -> float:
    pid = plog._offload.pid if plog._offload is not None else None
    return 0.0 if pid is None else float(cpu_seconds(pid))


def _block(kind: Any, names: tuple[str, ...], rng: Any, rows: int, first: int) -> Any:
    """A loop tick's block of `rows` one-row requests, as `log_observer` appends it."""
    now = datetime.now(UTC)
    ids = list(range(first, first + rows))
    return kind(
        [f"r{i}" for i in ids], now, "fraud", "3", rng.random((rows, len(names))),
        rng.random(rows), ["legit"] * rows, 0.5, [1.2] * rows, [False] * rows, names,
        "score", "", (ids, [7] * rows, [9] * rows, [now] * rows),
    )  # fmt: skip


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="mlsd-append-") as tmp:
        calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
        for key, value in append_cost(Path(tmp), calls).items():
            print(f"{key:24s} {value:10.2f}")
        for key, value in flusher_cost(Path(tmp)).items():
            print(f"{key:32s} {value:10.2f}")
