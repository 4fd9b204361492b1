"""Faults survived, measured: each backend stalled or stopped under load, a big job beside
online traffic, a server killed mid-job. Prints the table, writes JSON to benchmarks/results/.

.venv/bin/python -m benchmarks.faults [--quick] [--rows 2000000] [--rate 150]

Needs the shared Redis and PostgreSQL (MLSD_TEST_REDIS, MLSD_TEST_POSTGRES, as the tests).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.faults.scenarios import Row, big_job, kill_mid_job, postgres_fault, redis_fault
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

RESULTS = Path(__file__).resolve().parent.parent / "results"
REDIS = os.environ.get("MLSD_TEST_REDIS", "redis://127.0.0.1:6379/15")
POSTGRES = os.environ.get("MLSD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _fmt(value: float, unit: str) -> str:
    return "-" if math.isnan(value) else f"{value:.{2 if unit == 's' else 1}f} {unit}"


def table(rows: list[Row]) -> Table:
    """The results as one rich table."""
    out = Table(title="faults survived (open-loop load on one `mlsd serve`)")
    for col in ("fault", "requests", "failed", "p50 during", "p99 during", "recovery",
                "rows lost", "note"):  # fmt: skip
        out.add_column(col, justify="left" if col in ("fault", "note") else "right")
    for r in rows:
        out.add_row(
            r.fault, str(r.requests), str(r.failed), _fmt(r.p50_ms, "ms"), _fmt(r.p99_ms, "ms"),
            _fmt(r.recovery_s, "s"), str(r.lost), r.note,
        )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 200k-row job, 5 s windows")
    parser.add_argument("--rows", type=int, default=None, help="rows of the big job (2 M)")
    parser.add_argument("--rate", type=float, default=150.0, help="online requests per second")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = args.rows or (200_000 if args.quick else 2_000_000)
    seconds = 5.0 if args.quick else 10.0
    console = Console(width=160)
    results: list[Row] = []
    started = datetime.now(UTC).isoformat()
    with (
        tempfile.TemporaryDirectory(prefix="mlsd-faults-") as tmp,
        Progress(console=console) as bar,
    ):
        work = Path(tmp)
        steps: list[tuple[str, Any]] = [
            ("Redis stalled", lambda: [redis_fault(work, REDIS, "stall", args.rate)]),
            ("Redis down", lambda: [redis_fault(work, REDIS, "refuse", args.rate)]),
            ("PostgreSQL down", lambda: [postgres_fault(work, POSTGRES, args.rate)]),
            (f"{rows:,}-row job", lambda: big_job(work, REDIS, rows, args.rate, seconds)),
            ("kill -9 mid-job", lambda: [kill_mid_job(work, REDIS, 60_000)]),
        ]
        task = bar.add_task("faults", total=len(steps))
        for name, step in steps:
            bar.update(task, description=name)
            results += step()
            bar.advance(task)
    console.print(table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = args.out / f"faults-{stamp}.json"
    meta = {"started": started, "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    path.write_text(json.dumps({**meta, "rows": [asdict(r) for r in results]}, indent=2))
    console.print(f"results: {path}")
    return results


if __name__ == "__main__":
    main()
