"""Run every serving benchmark, print a table, write JSON and a PNG to benchmarks/results/.

.venv/bin/python -m benchmarks.serving [--quick] [--seconds 5] [--repeats 3]
    [--servers bare,mlsd,mlsd_no_log] [--http-only] [--realtime]
.venv/bin/python -m benchmarks.serving --shadow-paired [--rounds 8] [--round-seconds 8]
    [--aa] [--rate R] [--realtime]

`--shadow-paired` runs only the rollout issue's shadow figure: the champion's p99 at half
mlsd's maximum rate with and without a 100 % shadow, in paired, interleaved rounds, the
median of the rounds' ratios and its spread (`benchmarks.serving.shadow_paired`; about 3
minutes by default).

`--realtime` runs the HTTP part under the real-time policy (SCHED_FIFO, Linux, needs root
or CAP_SYS_NICE): the client, wrk and every server inherit it, so other work on a shared
machine (a build, a test run) no longer lands in the tail of the latencies. Inside mlsd's
server the background threads then drop back to the normal policy
(`mlsd.priority`), as they drop to nice 10 without it: the event loop preempts them
either way. Figures taken this way say so in their JSON (`"realtime": true`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.machine import snapshot
from benchmarks.serving.batcher_curve import batcher_curve
from benchmarks.serving.components import components
from benchmarks.serving.fixture import prepare_home
from benchmarks.serving.http import SERVERS, http_batching, http_benchmarks
from benchmarks.serving.log_cost import append_cost, log_cost
from benchmarks.serving.model_only import model_only
from benchmarks.serving.report import plot, print_tables
from benchmarks.serving.shadow_cost import shadow_cost
from benchmarks.serving.shadow_paired import shadow_paired
from rich.console import Console
from rich.progress import Progress

from mlsd.registry.formats import LIGHTGBM_ARTIFACT, ONNX_ARTIFACT

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _cpus() -> tuple[int | None, int | None]:
    """Server on one core, load generator on another, when there are two."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    os.sched_setaffinity(0, {cores[1]})  # this process (the open-loop client) too
    return cores[0], cores[1]


def _realtime() -> None:
    """This process, and what it starts from now on, under SCHED_FIFO (see the docstring)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (AttributeError, PermissionError) as exc:
        raise SystemExit(f"--realtime: cannot use SCHED_FIFO here ({exc})") from exc


def in_process(
    results: dict[str, Any],
    home: Path,
    work: Path,
    files: dict[str, bytes],
    progress: Progress,
    *,
    quick: bool,
    repeats: int,
) -> None:
    """The in-process parts: model only, batcher curve, components, log and shadow cost."""
    task = progress.add_task("model only", total=1)
    results["model_only"] = [asdict(p) for p in model_only(files, 15, repeats)]
    progress.advance(task)
    task = progress.add_task("micro-batcher (in process)", total=1)
    results["batcher"] = [
        asdict(p) for p in batcher_curve(files[ONNX_ARTIFACT], 15, repeats=repeats)
    ]
    progress.advance(task)
    task = progress.add_task("components (cache, log, breaker)", total=1)
    results["components"] = components()
    progress.advance(task)
    task = progress.add_task("prediction log cost (in process)", total=1)
    results["log_cost"] = log_cost(home, calls=2000 if quick else 6000)
    results["append_cost"] = append_cost(work / "append", calls=5000 if quick else 20000)
    progress.advance(task)
    task = progress.add_task("100 % shadow cost (in process)", total=1)
    results["shadow_cost"] = shadow_cost(home, calls=2000 if quick else 6000)
    progress.advance(task)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, no HTTP batching curve")
    parser.add_argument(
        "--seconds", type=float, default=None, help="length of each load run (3; 2 with --quick)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="runs per measurement, median (5; 2 with --quick)"
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--skip-http", action="store_true", help="in-process parts only")
    parser.add_argument(
        "--http-only", action="store_true", help="the HTTP part only (no in-process parts)"
    )
    parser.add_argument(
        "--servers",
        type=lambda text: [n for n in text.split(",") if n],
        default=None,
        help="comma-separated HTTP servers to run (bare always runs): " + ", ".join(SERVERS),
    )
    parser.add_argument(
        "--realtime", action="store_true", help="HTTP part under SCHED_FIFO (isolates it)"
    )
    parser.add_argument(
        "--shadow-paired", action="store_true",
        help="only the shadow figure: mlsd against mlsd_shadow in paired, interleaved rounds",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=8, help="paired rounds (--shadow-paired)")
    parser.add_argument(
        "--round-seconds", type=float, default=8.0, help="seconds per server and round"
    )
    parser.add_argument(
        "--aa", action="store_true", help="a second plain mlsd in every round (the noise floor)"
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="requests/s (default: half mlsd's max rate)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.rounds < 2 or args.round_seconds <= 0:
        parser.error("--rounds must be >= 2 and --round-seconds > 0")
    if args.rate is not None and not args.rate > 0:
        parser.error("--rate must be > 0")
    # Explicit --seconds/--repeats win; --quick only changes the defaults.
    seconds = args.seconds if args.seconds is not None else (2.0 if args.quick else 3.0)
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 5)
    server_cpu, client_cpu = _cpus()
    console = Console(width=132)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "realtime": args.realtime,
    }
    machine = snapshot()
    results["machine"] = machine.as_dict()
    console.print(machine.describe())
    with (
        tempfile.TemporaryDirectory(prefix="mlsd-bench-") as tmp,
        Progress(console=console) as progress,
    ):
        work = Path(tmp)
        task = progress.add_task("preparing data folder", total=1)
        home = work / "home"
        onnx_path = prepare_home(home)
        files = {
            ONNX_ARTIFACT: onnx_path.read_bytes(),
            LIGHTGBM_ARTIFACT: (home / "bench-model.lgb.txt").read_bytes(),
        }
        progress.advance(task)
        if args.shadow_paired:
            if args.realtime:
                _realtime()
            results["shadow_paired"] = shadow_paired(
                home, work, progress, rounds=args.rounds, seconds=args.round_seconds,
                connections=args.connections, server_cpu=server_cpu, client_cpu=client_cpu,
                aa=args.aa, rate=args.rate,
            )  # fmt: skip
        elif not args.http_only:
            in_process(results, home, work, files, progress, quick=args.quick, repeats=repeats)
        if not args.skip_http and not args.shadow_paired:
            if args.realtime:
                _realtime()  # the HTTP part only, not the in-process parts
            common = {"server_cpu": server_cpu, "client_cpu": client_cpu}
            results["http"] = http_benchmarks(
                home, onnx_path, work, progress,
                seconds=seconds, repeats=repeats, connections=args.connections,
                servers=args.servers, **common,
            )  # fmt: skip
            if not args.quick and args.servers is None:
                results["http_batching"] = http_batching(
                    home, work, progress,
                    seconds=seconds, repeats=repeats, connections=64, **common,
                )  # fmt: skip
    results["finished"] = datetime.now(UTC).isoformat()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    json_path = args.out / f"serving-{stamp}.json"
    json_path.write_text(json.dumps(results, indent=2))
    print_tables(results, console)
    if args.shadow_paired:  # one figure, in the table: no plot
        console.print(f"results: {json_path}")
        return results
    png_path = plot(results, args.out / f"serving-{stamp}.png")
    console.print(f"results: {json_path}\nplot: {png_path}")
    return results


if __name__ == "__main__":
    main()
