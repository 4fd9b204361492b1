"""The champion's p99 at half mlsd's maximum rate with and without a 100 % shadow, in
paired, interleaved rounds: the figure of the rollout issue (p99 grows <= 5 %).

One p99 per server from a few seconds each cannot resolve ±5 %: two identical servers
differ by 25-90 % from run to run on a shared 2-core machine, and a slow minute hits
whichever server runs in it. Here `mlsd` and `mlsd_shadow` (the same app, every request
also scored by fraud/2 in the shadow scorer process) run side by side, both pinned to the
server core; each round sends the same open-loop rate (half `mlsd`'s maximum, measured
first with wrk) to one, then the other, the order alternating from round to round, so a
trend in the machine's load falls on both alike. Each round gives a ratio
`p99(shadow) / p99(champion) - 1`; the figure is the median of the rounds' ratios, with
their quartiles and range, the same for p50, and the shadows the server dropped (its queue
full, read from `mlsd_shadow_dropped_total` around each shadow run) against the shadows
sent, and the rounds in which a server answered less than 97 % of the rate (it fell
behind: its p99 there is a queue's, and the figure is not to be read from such a run).
`--aa` adds a second plain `mlsd` to every round (three runs, the order rotating): its
ratio to the first is the noise floor of the same measurement (an A/A run).

    .venv/bin/python -m benchmarks.serving --shadow-paired [--rounds 8]
        [--round-seconds 8] [--aa] [--rate R]

Defaults: 8 rounds of 8 s per server (about 3 minutes with start-up and the maximum rate;
about 4.5 with --aa). Read the figure on a quiet machine: the load average is recorded
before and after.
"""

from __future__ import annotations

import os
import statistics
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from benchmarks.serving.fixture import N_CUSTOMERS, N_TERMINALS
from benchmarks.serving.http import SERVERS, _dropped, wait_drained
from benchmarks.serving.launch import serve
from benchmarks.serving.loadgen import open_loop, score_bodies, write_wrk_script, wrk
from rich.progress import Progress

CHAMPION, SHADOW, TWIN = "mlsd", "mlsd_shadow", "mlsd_twin"
#: A run that answered less than this share of the rate fell behind it (a saturated server).
BEHIND = 0.97


def spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles and range of per-round ratios.

    >>> spread([0.1, -0.05, 0.02, 0.0])["median"]
    0.01
    """
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return {
        "median": float(q50), "q25": float(q25), "q75": float(q75),
        "min": min(values), "max": max(values),
        "above_zero": sum(v > 0 for v in values) / len(values),
    }  # fmt: skip


def shadow_paired(
    home: Path,
    work: Path,
    progress: Progress,
    *,
    rounds: int = 8,
    seconds: float = 8.0,
    connections: int = 32,
    server_cpu: int | None,
    client_cpu: int | None,
    aa: bool = False,
    rate: float | None = None,
    max_seconds: float = 3.0,
    max_repeats: int = 3,
) -> dict[str, Any]:
    """Paired rounds of `mlsd` against `mlsd_shadow` (and, with `aa`, a second `mlsd`)."""
    if rounds < 2 or seconds <= 0:
        raise ValueError("need at least 2 rounds of more than 0 s")
    if rate is not None and not rate > 0:
        raise ValueError(f"the rate must be > 0 requests/s, got {rate}")
    chosen = {CHAMPION: SERVERS[CHAMPION], SHADOW: SERVERS[SHADOW]}
    if aa:
        chosen[TWIN] = SERVERS[CHAMPION]
    env = {"MLSD_HOME": str(home)}
    script = write_wrk_script(work, N_CUSTOMERS, N_TERMINALS)
    bodies = score_bodies(5000, N_CUSTOMERS, N_TERMINALS)
    out: dict[str, Any] = {
        "rounds": rounds, "seconds": seconds, "connections": connections,
        "load_average_before": os.getloadavg(),
    }  # fmt: skip
    with ExitStack() as stack:
        urls: dict[str, str] = {}
        task = progress.add_task("starting servers", total=len(chosen))
        for name, (factory, ready, extra) in chosen.items():
            base = stack.enter_context(serve(factory, {**env, **extra}, cpu=server_cpu,
                                             ready_path=ready))  # fmt: skip
            urls[name] = base + "/v1/score"
            wrk(urls[name], script, 2, connections, client_cpu)  # warm up
            progress.advance(task)
        if rate is None:
            task = progress.add_task("mlsd's maximum rate (wrk)", total=max_repeats)
            maxima = []
            for _ in range(max_repeats):
                maxima.append(wrk(urls[CHAMPION], script, max_seconds, connections, client_cpu))
                progress.advance(task)
            out["max_rps"] = statistics.median(m.rps for m in maxima)
            out["max_runs"] = [asdict(m) for m in maxima]
            rate = 0.5 * out["max_rps"]
        out["rate"] = rate
        for url in urls.values():  # the open loop and the shadow child warm, at the rate
            open_loop(url, bodies, rate, 2.0)
        for url in urls.values():  # the maximum-rate runs' records stored first
            wait_drained(url)
        names = list(urls)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        task = progress.add_task("paired rounds (open loop)", total=rounds * len(names))
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]  # alternating
            for name in order:
                before = _dropped(urls[name]) if name == SHADOW else 0.0
                result = asdict(open_loop(urls[name], bodies, rate, seconds))
                if name == SHADOW:
                    result["dropped"] = _dropped(urls[name]) - before
                result["round"], result["position"] = r, order.index(name)
                runs[name].append(result)
                progress.advance(task)
    out["load_average_after"] = os.getloadavg()
    out["runs"] = runs

    def ratios(name: str, key: str) -> list[float]:
        return [s[key] / c[key] - 1.0 for s, c in zip(runs[name], runs[CHAMPION], strict=True)]

    out["shadow_p99"] = spread(ratios(SHADOW, "p99_ms"))
    out["shadow_p50"] = spread(ratios(SHADOW, "p50_ms"))
    if aa:
        out["aa_p99"] = spread(ratios(TWIN, "p99_ms"))
        out["aa_p50"] = spread(ratios(TWIN, "p50_ms"))
    behind = [  # a server that fell behind the rate: its p99 is a queue, not a latency
        r for r in range(rounds)
        if any(runs[n][r]["achieved_rps"] < BEHIND * rate for n in names)
    ]  # fmt: skip
    out["rounds_behind"] = behind
    sent = sum(run["sent"] for run in runs[SHADOW])
    out["shadow_dropped"] = sum(run["dropped"] for run in runs[SHADOW])
    out["shadow_sent"] = sent
    out["errors"] = sum(run["errors"] for name in names for run in runs[name])
    return out
