"""Tables on the console and one PNG with four panels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def print_tables(results: dict[str, Any], console: Console) -> None:
    """The figures of a run, one table per part."""
    http = results.get("http")
    if http:
        table = Table(title=f"/v1/score over HTTP, one uvicorn worker, wrk -c{http['connections']}")
        for col in ("server", "req/s", "ratio to bare", "p50 @max", "p99 @max", "half rate",
                    "p50 @half", "p99 @half", "CPU @half", "errors"):  # fmt: skip
            table.add_column(col, justify="right")
        for name, run in http["max"].items():
            half = http["half_rate"][name]
            table.add_row(
                name,
                f"{run['rps']:.0f}",
                f"{http['ratio_to_bare'][name]:.2f}",
                f"{run['p50_ms']:.1f} ms",
                f"{run['p99_ms']:.1f} ms",
                f"{half['rate']:.0f}/s",
                f"{half['p50_ms']:.2f} ms",
                f"{half['p99_ms']:.2f} ms",
                f"{http.get('cpu_us_per_request', {}).get(name, float('nan')):.0f} µs/req",
                str(int(run["errors"] + half["errors"])),
            )
        console.print(table)
        if "log_overhead_p50" in http:
            console.print(
                f"prediction log over HTTP: {http['log_overhead_p50'] * 100:+.1f} % p50 at equal "
                f"rate, {-http['log_overhead_rps'] * 100:+.1f} % max req/s (target < 10 % p50)"
            )
        if "shadow_overhead_p99" in http:
            console.print(
                f"100 % shadow: champion p99 {http['shadow_overhead_p99'] * 100:+.1f} % at "
                f"mlsd's half rate (target <= +5 %), {http['shadow_dropped']:.0f} shadow "
                "scorings dropped (queue full); scored by the server's thread instead: "
                f"{http.get('shadow_thread_overhead_p99', float('nan')) * 100:+.1f} %, "
                f"{http.get('shadow_thread_dropped', float('nan')):.0f} dropped"
            )
    paired = results.get("shadow_paired")
    if paired:
        print_shadow_paired(paired, console)
    shadow = results.get("shadow_cost")
    if shadow:
        console.print(
            f"100 % shadow, in process: answer p50 {shadow['overhead_p50'] * 100:+.1f} %, "
            f"p99 {shadow['overhead_p99'] * 100:+.1f} % (target <= +5 %); CPU per call "
            f"{shadow['none_cpu_us_per_call']:.0f} -> {shadow['shadow_cpu_us_per_call']:.0f} µs "
            f"({shadow['overhead_cpu'] * 100:+.0f} %; the server's own "
            f"{shadow.get('shadow_server_cpu_us_per_call', float('nan')):.0f} µs, the shadow "
            f"process {shadow.get('shadow_child_cpu_us_per_call', float('nan')):.0f} µs); "
            f"{shadow['dropped']:.0f} shadows dropped. In the server's thread instead: p50 "
            f"{shadow.get('thread_overhead_p50', float('nan')) * 100:+.1f} %, p99 "
            f"{shadow.get('thread_overhead_p99', float('nan')) * 100:+.1f} %, CPU "
            f"{shadow.get('thread_cpu_us_per_call', float('nan')):.0f} µs"
        )
    cost = results.get("log_cost")
    if cost:
        console.print(
            f"prediction log in process: p50 {cost['log_p50_us']:.0f} µs with, "
            f"{cost['no_log_p50_us']:.0f} µs without: {cost['overhead_p50'] * 100:+.1f} % "
            f"on the scoring call without HTTP (target < 10 % of the request p50)"
        )
    append = results.get("append_cost")
    if append:
        console.print(
            f"prediction log append of one record: p50 {append['journal_p50_us']:.1f} µs with "
            f"the journal, {append['no_journal_p50_us']:.1f} µs without "
            f"(p99 {append['journal_p99_us']:.1f} / {append['no_journal_p99_us']:.1f} µs)"
        )
    parts = results.get("components")
    if parts:
        table = Table(title="components")
        for col in ("component", "backend", "figure"):
            table.add_column(col)
        for c in parts["cache"]:
            figure = f"{c['us_per_request']:.0f} µs / request of {c['rows']} rows"
            table.add_row("cache get+put", c["backend"], figure)
        for c in parts["log"]:
            table.add_row("prediction log", c["backend"], f"{c['records_per_s']:,.0f} records/s")
        table.add_row("breaker", "-", f"+{parts['breaker']['added_us']:.2f} µs per call")
        console.print(table)
    if "model_only" not in results:  # an --http-only run: no in-process parts
        return
    table = Table(title="model only (rows/s, median)")
    table.add_column("batch", justify="right")
    runtimes = sorted({p["runtime"] for p in results["model_only"]})
    for name in runtimes:
        table.add_column(name, justify="right")
        table.add_column(f"{name} µs/call", justify="right")
    for size in sorted({p["batch_size"] for p in results["model_only"]}):
        row = [str(size)]
        for name in runtimes:
            point = next(
                p for p in results["model_only"] if p["runtime"] == name and p["batch_size"] == size
            )
            row += [f"{point['rows_per_s']:,.0f}", f"{point['call_us']:.0f}"]
        table.add_row(*row)
    console.print(table)
    table = Table(title="micro-batcher in process (64 clients, ONNX)")
    for col in ("max batch", "max delay ms", "rows/s", "p50 ms", "p99 ms", "mean batch"):
        table.add_column(col, justify="right")
    for p in results["batcher"]:
        table.add_row(
            str(p["max_batch_size"]),
            "off" if p["max_delay_ms"] < 0 else f"{p['max_delay_ms']:g}",
            f"{p['rows_per_s']:,.0f}",
            f"{p['p50_ms']:.2f}",
            f"{p['p99_ms']:.2f}",
            f"{p['mean_batch']:.1f}",
        )
    console.print(table)
    if results.get("http_batching"):
        table = Table(title="micro-batching over HTTP (mlsd /v1/score, wrk -c64)")
        for col in ("max batch", "max delay ms", "req/s", "p50 ms", "p99 ms"):
            table.add_column(col, justify="right")
        for p in results["http_batching"]:
            table.add_row(
                str(p["max_batch_size"]),
                "off" if p["max_delay_ms"] < 0 else f"{p['max_delay_ms']:g}",
                f"{p['rps']:.0f}",
                f"{p['p50_ms']:.1f}",
                f"{p['p99_ms']:.1f}",
            )
        console.print(table)


def print_shadow_paired(paired: dict[str, Any], console: Console) -> None:
    """Each round's champion and shadow p99, then the median ratio and its spread."""
    runs = paired["runs"]
    names = list(runs)
    table = Table(
        title=f"champion p99 at {paired['rate']:.0f} req/s (half mlsd's max), "
        f"{paired['rounds']} paired rounds of {paired['seconds']:g} s"
    )
    table.add_column("round", justify="right")
    for name in names:
        table.add_column(f"{name} p50 / p99 (req/s)", justify="right")
    table.add_column("shadow p99 ratio", justify="right")
    table.add_column("dropped", justify="right")
    for r in range(paired["rounds"]):
        cells = [
            f"{runs[n][r]['p50_ms']:.2f} / {runs[n][r]['p99_ms']:.2f} ms "
            f"({runs[n][r]['achieved_rps']:.0f})"
            for n in names
        ]
        ratio = runs["mlsd_shadow"][r]["p99_ms"] / runs["mlsd"][r]["p99_ms"] - 1.0
        dropped = runs["mlsd_shadow"][r]["dropped"]
        table.add_row(str(r), *cells, f"{ratio * 100:+.1f} %", f"{dropped:.0f}")
    console.print(table)

    def line(label: str, s: dict[str, float]) -> str:
        return (
            f"{label}: median {s['median'] * 100:+.1f} % (quartiles {s['q25'] * 100:+.1f} .. "
            f"{s['q75'] * 100:+.1f} %, range {s['min'] * 100:+.1f} .. {s['max'] * 100:+.1f} %, "
            f"{s['above_zero'] * 100:.0f} % of rounds above 0)"
        )

    console.print(line("100 % shadow, champion p99 (target <= +5 %)", paired["shadow_p99"]))
    console.print(line("100 % shadow, champion p50", paired["shadow_p50"]))
    if "aa_p99" in paired:
        console.print(line("A/A (a second mlsd), p99", paired["aa_p99"]))
        console.print(line("A/A (a second mlsd), p50", paired["aa_p50"]))
    share = paired["shadow_dropped"] / max(1, paired["shadow_sent"])
    console.print(
        f"shadows dropped: {paired['shadow_dropped']:.0f} of {paired['shadow_sent']} "
        f"({share * 100:.2f} %); errors {paired['errors']}; load average "
        f"{paired['load_average_before'][0]:.2f} before, "
        f"{paired['load_average_after'][0]:.2f} after"
    )
    behind = paired.get("rounds_behind", [])
    if behind:
        console.print(
            f"[bold red]rounds {behind}: a server fell behind the rate (answered < 97 % of it): "
            "those p99s are queues, the machine was too busy to read the figure[/]"
        )


def plot(results: dict[str, Any], path: Path) -> Path:
    """Four panels: req/s by server, latency at half rate, model-only, batcher curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    http = results.get("http")
    ax = axes[0][0]
    if http:
        names = list(http["max"])
        ax.bar(names, [http["max"][n]["rps"] for n in names], color="tab:blue")
        for i, n in enumerate(names):
            ax.annotate(f"{http['ratio_to_bare'][n]:.2f}×", (i, http["max"][n]["rps"]),
                        ha="center", va="bottom")  # fmt: skip
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.set_ylabel("requests/s (one worker)")
        ax.set_title("max rate, ratio to the bare endpoint")
        ax = axes[0][1]
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], [http["half_rate"][n]["p50_ms"] for n in names], 0.4,
               label="p50")  # fmt: skip
        ax.bar([i + 0.2 for i in x], [http["half_rate"][n]["p99_ms"] for n in names], 0.4,
               label="p99")  # fmt: skip
        ax.axhline(10, color="red", linestyle="--", linewidth=1, label="p99 target 10 ms")
        ax.set_xticks(list(x), names, rotation=20, fontsize=8)
        ax.set_ylabel("latency ms (open loop, half of max rate)")
        ax.set_title("latency at half the maximum rate")
        ax.legend()
    else:
        axes[0][0].set_axis_off()
        axes[0][1].set_axis_off()
    if results.get("model_only"):
        _model_only(axes[1][0], results["model_only"])
    else:  # --http-only
        axes[1][0].set_axis_off()
    if results.get("batcher") or results.get("http_batching"):
        _batcher(axes[1][1], results)
    else:
        axes[1][1].set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _model_only(ax: Any, model_only: list[dict[str, Any]]) -> None:
    for name in sorted({p["runtime"] for p in model_only}):
        points = [p for p in model_only if p["runtime"] == name]
        ax.plot([p["batch_size"] for p in points], [p["rows_per_s"] for p in points], "o-",
                label=name)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("rows/s")
    ax.set_title("model only")
    ax.legend()


def _batcher(ax: Any, results: dict[str, Any]) -> None:
    series = [("in process", results.get("batcher", []), "rows_per_s")]
    if results.get("http_batching"):
        series.append(("HTTP /v1/score", results["http_batching"], "rps"))
    for label, points, key in series:
        ax.plot([p[key] for p in points], [p["p99_ms"] for p in points], "o", label=label)
        for p in points:
            tag = "off" if p["max_delay_ms"] < 0 else f"{p['max_batch_size']},{p['max_delay_ms']:g}"
            ax.annotate(tag, (p[key], p["p99_ms"]), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("throughput (rows/s or req/s)")
    ax.set_ylabel("p99 latency ms")
    ax.set_title("micro-batcher: (max batch, max delay ms)")
    ax.legend()
