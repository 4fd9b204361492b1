"""`mlsd simulate`: generate a transaction dataset (handbook simulator) into a folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from datetime import date

    from mlsd.data.summary import Summary

_FLAGS = {
    "n_customers": "--customers",
    "n_terminals": "--terminals",
    "n_days": "--days",
    "seed": "--seed",
    "radius": "--radius",
    "label_delay_days": "--label-delay-days",
}


def simulate(
    out: Path = typer.Option(..., "--out", help="Dataset folder to create (must be empty)."),
    customers: int = typer.Option(5000, "--customers", help="Number of customers."),
    terminals: int = typer.Option(10000, "--terminals", help="Number of terminals."),
    days: int = typer.Option(183, "--days", help="Number of simulated days."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same data)."),
    start_date: str = typer.Option("2018-04-01", "--start-date", help="First day, YYYY-MM-DD."),
    radius: float = typer.Option(5.0, "--radius", help="Customer-terminal radius on the grid."),
    label_delay_days: int = typer.Option(
        7, "--label-delay-days", help="Days until a label is known."
    ),
    scenarios: Path | None = typer.Option(
        None, "--scenarios", help="JSON file: a list of injected scenario events."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset."),
    per_day: bool = typer.Option(False, "--per-day", help="Also print a per-day table."),
    scale_fraud: bool = typer.Option(
        False,
        "--scale-fraud",
        help="Scale compromises per day with the populations (keeps the handbook's fraud rate "
        "in a smaller world).",
    ),
) -> None:
    """Simulate credit-card transactions (Fraud Detection Handbook) into Parquet by day."""
    from datetime import date

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from mlsd.data.config import SimulatorConfig, load_scenarios
    from mlsd.data.io import check_target, write_dataset
    from mlsd.data.simulator import STAGES
    from mlsd.data.simulator import simulate as run_simulation
    from mlsd.data.summary import summarize
    from mlsd.errors import ConfigError

    try:
        first_day = date.fromisoformat(start_date)
    except ValueError:
        raise ConfigError(
            f"{start_date!r} is not a date (YYYY-MM-DD)", field="start_date"
        ) from None
    try:
        fields = {
            "n_days": days,
            "seed": seed,
            "start_date": first_day,
            "radius": radius,
            "label_delay_days": label_delay_days,
            "scenarios": load_scenarios(scenarios) if scenarios is not None else [],
        }
        if scale_fraud:
            config = SimulatorConfig.scaled(customers, terminals, **fields)
        else:
            config = SimulatorConfig(n_customers=customers, n_terminals=terminals, **fields)
    except ConfigError as exc:
        flag = _FLAGS.get(exc.field or "")
        raise ConfigError(
            f"{exc.message} (option {flag})" if flag else exc.message, field=exc.field
        ) from None
    check_target(out, overwrite)

    console = Console()
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("simulating", total=len(STAGES) + 1)

        def advance(stage: str) -> None:
            progress.update(task, advance=1, description=f"simulating: {stage}")

        dataset = run_simulation(config, progress=advance)
        progress.update(task, description="writing Parquet")
        write_dataset(dataset, out, overwrite=overwrite)
        progress.update(task, advance=1, description="done")
    summary = summarize(dataset.transactions, config.n_days)
    if per_day:
        _print_per_day(console, summary, config.start_date)
    _print_summary(console, summary, out)


def _print_per_day(console: Console, summary: Summary, start: date) -> None:
    from datetime import timedelta

    from rich.table import Table

    table = Table(title="Per day")
    for name in ("day", "transactions", "frauds", "fraud rate"):
        table.add_column(name, justify="right")
    for i, (n, f) in enumerate(
        zip(summary.per_day_transactions, summary.per_day_frauds, strict=True)
    ):
        rate = f"{f / n:.2%}" if n else "-"
        table.add_row(str(start + timedelta(days=i)), f"{n:,}", f"{f:,}", rate)
    console.print(table)


def _print_summary(console: Console, summary: Summary, out: Path) -> None:
    from rich.table import Table

    from mlsd.data.events import CARD_TESTING_SCENARIO, COMPROMISE_RATE_SCENARIO

    names = {
        1: "1: amount > threshold",
        2: "2: compromised terminal",
        3: "3: compromised customer",
        CARD_TESTING_SCENARIO: f"{CARD_TESTING_SCENARIO}: card testing (injected)",
        COMPROMISE_RATE_SCENARIO: f"{COMPROMISE_RATE_SCENARIO}: extra compromised terminal",
    }
    table = Table(title=f"Simulated dataset in {out}", show_header=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("transactions", f"{summary.transactions:,}")
    table.add_row("frauds", f"{summary.frauds:,}")
    table.add_row("fraud rate", f"{summary.fraud_rate:.3%}")
    table.add_row(
        "transactions per day (mean / min / max)",
        f"{summary.tx_per_day_mean:,.0f} / {summary.tx_per_day_min:,} / {summary.tx_per_day_max:,}",
    )
    table.add_row("frauds per day (mean)", f"{summary.frauds_per_day_mean:,.1f}")
    for scenario, count in summary.per_scenario.items():
        label = names.get(scenario, str(scenario))
        table.add_row(f"scenario {label}", f"{count:,} ({summary.scenario_share[scenario]:.1%})")
    for name, count in summary.per_injected.items():
        table.add_row(f"injected '{name}' rows", f"{count:,}")
    console.print(table)
