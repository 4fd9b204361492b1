"""Benchmark the vectorised simulator on the handbook's full configuration.

Run: `.venv/bin/python benchmarks/simulator.py [--runs 3] [--skip-loop] [--full-loop]`

Each run is a fresh subprocess (so peak RSS is that run's own): simulate 5,000
customers x 10,000 terminals x 183 days, then write the Parquet dataset. Prints the
median wall time and peak RSS against the targets (<= 10 s, <= 4 GB), the statistics
against the handbook's, the ratio to the handbook's loop generator (141 s on this
machine, as given in the issue), and an in-run ratio against a loop-based reference
(`benchmarks/simulator_loop.py`) at a small scale, both measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

HANDBOOK_LOOP_SECONDS = 141.0
TARGET_SECONDS = 10.0
TARGET_BYTES = 4 * 1024**3
SMALL = {"n_customers": 1000, "n_terminals": 2000, "n_days": 60}

CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
t0 = time.perf_counter()
from mlsd.data.config import SimulatorConfig
from mlsd.data.simulator import simulate
from mlsd.data.io import write_dataset
from mlsd.data.summary import summarize
t1, c1 = time.perf_counter(), time.process_time()
config = SimulatorConfig(seed=int(sys.argv[1]))
dataset = simulate(config)
t2, c2 = time.perf_counter(), time.process_time()
with tempfile.TemporaryDirectory() as tmp:
    write_dataset(dataset, Path(tmp) / "ds")
    t3, c3 = time.perf_counter(), time.process_time()
summary = summarize(dataset.transactions, config.n_days)
print(json.dumps({
    "import_s": t1 - t0, "simulate_s": t2 - t1, "write_s": t3 - t2,
    "simulate_cpu_s": c2 - c1, "write_cpu_s": c3 - c2,
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "summary": summary.to_dict(),
}))
"""


def full_run(seed: int) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(seed)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def small_vectorised() -> float:
    from mlsd.data.config import SimulatorConfig
    from mlsd.data.simulator import simulate

    config = SimulatorConfig(**SMALL)  # type: ignore[arg-type]
    t = time.perf_counter()
    simulate(config)
    return time.perf_counter() - t


def small_loop(n_customers: int = 0, n_terminals: int = 0, n_days: int = 0) -> float:
    """Seconds the loop reference takes (default: the SMALL configuration)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from simulator_loop import simulate_loop

    t = time.perf_counter()
    simulate_loop(
        n_customers or SMALL["n_customers"],
        n_terminals or SMALL["n_terminals"],
        n_days or SMALL["n_days"],
    )
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-loop", action="store_true", help="skip the loop reference")
    parser.add_argument(
        "--full-loop", action="store_true", help="also time the loop reference once at full size"
    )
    args = parser.parse_args()
    console = Console()
    load = os.getloadavg()[0]
    console.print(f"{os.cpu_count()} cores, load average {load:.1f} (timings are noisy above ~1)")
    runs: list[dict[str, object]] = []
    vec: list[float] = []
    loop: list[float] = []
    with Progress(console=console) as progress:
        task = progress.add_task("full handbook config", total=args.runs)
        for i in range(args.runs):
            runs.append(full_run(seed=i))
            progress.advance(task)
        if not args.skip_loop:
            small = progress.add_task("small config: loop vs vectorised", total=2 * args.runs)
            small_vectorised()  # warm imports
            for _ in range(args.runs):
                vec.append(small_vectorised())
                progress.advance(small)
                loop.append(small_loop())
                progress.advance(small)

    def med(key: str) -> float:
        return statistics.median(float(r[key]) for r in runs)  # type: ignore[arg-type]

    sim, write, rss = med("simulate_s"), med("write_s"), med("peak_rss_bytes")
    table = Table(title=f"Full handbook configuration, median of {args.runs} runs")
    table.add_column("measure")
    table.add_column("median", justify="right")
    table.add_column("target / reference", justify="right")
    table.add_row("simulate (s)", f"{sim:.2f}", f"<= {TARGET_SECONDS:.0f}")
    table.add_row("simulate + write Parquet (s)", f"{sim + write:.2f}", f"<= {TARGET_SECONDS:.0f}")
    cpu = med("simulate_cpu_s")
    table.add_row("simulate, CPU time (s)", f"{cpu:.2f}", "load-independent")
    table.add_row("simulate + write, CPU time (s)", f"{cpu + med('write_cpu_s'):.2f}", "")
    table.add_row("peak RSS (GB)", f"{rss / 1024**3:.2f}", f"<= {TARGET_BYTES / 1024**3:.0f}")
    table.add_row(
        "speed-up vs handbook loop (141 s)", f"{HANDBOOK_LOOP_SECONDS / sim:.0f}x", "given"
    )
    if loop:
        small_ratio = statistics.median(loop) / statistics.median(vec)
        label = "x".join(str(v) for v in SMALL.values())
        table.add_row(
            f"in-run loop ref / vectorised ({label})",
            f"{small_ratio:.0f}x",
            f"{statistics.median(loop):.2f} s / {statistics.median(vec):.3f} s",
        )
    if args.full_loop:
        with console.status("loop reference at the full handbook size (a minute or two)"):
            full = small_loop(5000, 10000, 183)
        table.add_row("in-run loop ref, full size (s), 1 run", f"{full:.1f}", f"{full / sim:.0f}x")
    console.print(table)

    from mlsd.data.summary import HANDBOOK

    stats = Table(title="Statistics vs the handbook (median over runs)")
    stats.add_column("statistic")
    stats.add_column("mlsd", justify="right")
    stats.add_column("handbook", justify="right")
    summaries = [r["summary"] for r in runs]

    def smed(key: str) -> float:
        return statistics.median(float(s[key]) for s in summaries)  # type: ignore[index]

    stats.add_row("transactions", f"{smed('transactions'):,.0f}", f"{HANDBOOK['transactions']:,}")
    stats.add_row("tx per day", f"{smed('tx_per_day_mean'):,.0f}", f"{HANDBOOK['tx_per_day']:,.0f}")
    stats.add_row("frauds", f"{smed('frauds'):,.0f}", f"{HANDBOOK['frauds']:,}")
    stats.add_row("fraud rate", f"{smed('fraud_rate'):.3%}", f"{HANDBOOK['fraud_rate']:.3%}")
    shares = HANDBOOK["scenario_share"]
    assert isinstance(shares, dict)
    for k in (1, 2, 3):
        ours = statistics.median(float(s["scenario_share"][str(k)]) for s in summaries)  # type: ignore[index]
        stats.add_row(f"share of scenario {k}", f"{ours:.1%}", f"{shares[k]:.1%}")
    console.print(stats)


if __name__ == "__main__":
    main()
