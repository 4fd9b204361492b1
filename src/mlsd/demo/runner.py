"""The demo's stages, in data-flow order: each calls one package's `demo_step`.

simulate -> features (build, materialize, parity) -> train + register + promote ->
serve and send simulated traffic (until `--for` seconds pass, or Ctrl-C).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from mlsd.settings import Settings, get_settings

console = Console()
DATASET = "datasets/demo"
# Big enough for steady test metrics (about 290,000 transactions and 2,300 frauds; at 500
# customers and 60 days the test block holds 16-42 frauds and AUC swings 0.43-0.94 by seed),
# small enough that simulate + features + train take about 20 s on 2 cores.
DEMO_CUSTOMERS, DEMO_TERMINALS, DEMO_DAYS = 1500, 3000, 100


def _stage(title: str, step: Callable[[], Any]) -> Any:
    """Run one stage under a spinner and report its wall time."""
    started = time.perf_counter()
    with console.status(f"[bold]{title}[/] ..."):
        result = step()
    console.print(f"[green]✓[/] {title} [dim]({time.perf_counter() - started:.1f} s)[/]")
    return result


def _table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="cyan")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, f"{value:,.4g}" if isinstance(value, float) else f"{value}")
    return table


def _per_view(counts: dict[str, int]) -> str:
    return ", ".join(f"{view}: {count:,}" for view, count in counts.items())


def _simulate(settings: Settings) -> Path:
    from mlsd.data.demo import demo_step

    out = settings.path(DATASET)
    summary = _stage(
        "simulate transactions",
        lambda: demo_step(
            out, n_customers=DEMO_CUSTOMERS, n_terminals=DEMO_TERMINALS, n_days=DEMO_DAYS
        ),
    )
    console.print(
        _table(
            "simulated data",
            {
                "transactions": f"{summary.transactions:,}",
                "frauds": f"{summary.frauds:,}",
                "fraud rate": f"{summary.fraud_rate:.2%}",
                "days": summary.days,
                "tx per day (mean)": round(summary.tx_per_day_mean, 1),
                "frauds by scenario": ", ".join(
                    f"{k}: {v}" for k, v in sorted(summary.per_scenario.items())
                ),
            },
        )
    )
    return out


def _features(settings: Settings, dataset: Path) -> None:
    from mlsd.features.demo import demo_step

    report = _stage("build, materialize and check features", lambda: demo_step(dataset, settings))
    console.print(
        _table(
            "feature store",
            {
                "views (version)": ", ".join(f"{k}@{v[:8]}" for k, v in report["versions"].items()),
                "offline rows": _per_view(report["offline_rows"]),
                "online rows written": _per_view(report["online_rows_written"]),
                "watermark": report["watermark"],
                "parity (online vs offline)": f"{report['parity_agreement']:.1%} "
                f"of {report['parity_compared']:,} values",
            },
        )
    )


def _train(settings: Settings, dataset: Path) -> None:
    from mlsd.training.demo import demo_step

    report = _stage(
        "train, register and promote", lambda: demo_step(dataset, settings, build=False)
    )
    rows: dict[str, Any] = {"model": f"{report['uri']} ({report['flavor']})"}
    rows |= {name: round(value, 4) for name, value in sorted(report["metrics"].items())}
    rows["promoted to champion"] = report["promoted"]
    rows["PR curve"] = report["pr_curve"]
    console.print(_table("training (handbook protocol)", rows))


def _registry(settings: Settings) -> None:
    from mlsd.registry.demo import demo_step

    console.print("[bold]model registry[/]: versions, champion lineage, alias history")
    demo_step(settings, name="fraud", console=console)


def _prediction_log(settings: Settings, since: datetime) -> None:
    from mlsd.predlog.demo import demo_step

    report = demo_step(settings, since=since)
    console.print(_table("prediction log (read back from storage)", report))


def _serve(settings: Settings, seconds: float | None) -> None:
    from mlsd.serving.demo import demo_step

    until = "Ctrl-C" if seconds is None else f"{seconds:g} s"
    console.print(f"[bold]serve and score simulated traffic[/] (until {until})")
    report = demo_step(settings, seconds=seconds, console=console)
    console.print(_table("serving", report))


def run_demo(seconds: float | None = None, settings: Settings | None = None) -> None:
    """Run every stage; the serving stage runs for `seconds`, or until Ctrl-C when None.

    The stages before serving take about half a minute on the demo dataset.
    """
    settings = settings or get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    console.print(Panel.fit(f"mlsd demo — data folder: [bold]{settings.home.resolve()}[/]"))
    dataset = _simulate(settings)
    _features(settings, dataset)
    _train(settings, dataset)
    _registry(settings)
    serving_started = datetime.now(UTC)
    try:
        _serve(settings, seconds)
    except KeyboardInterrupt:
        console.print("stopped")
    _prediction_log(settings, serving_started)
    console.print(f"\nEverything the demo wrote is under [bold]{settings.home.resolve()}[/]:")
    for child in sorted(settings.home.iterdir()):
        console.print(f"  {child.name}/" if child.is_dir() else f"  {child.name}")
