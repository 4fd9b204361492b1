"""`mlsd lab`: list the experiments, run one (`--quick` for a fast indicative run)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from mlsd.settings import Settings

lab = typer.Typer(help="The lab: each experiment answers one ML-system-design question.")
console = Console()


@lab.command("list")
def list_experiments() -> None:
    """Every experiment with the question it answers."""
    from mlsd.lab import EXPERIMENTS, experiment_named

    table = Table("name", "question", show_lines=False)
    for name in sorted(EXPERIMENTS):
        table.add_row(name, experiment_named(name).question)
    console.print(table)


@lab.command("run")
def run(
    name: str = typer.Argument(..., help="The experiment (see `mlsd lab list`)."),
    quick: bool = typer.Option(
        False, "--quick", help="A run of seconds with fewer points (indicative figures)."
    ),
) -> None:
    """Run one experiment; writes $MLSD_HOME/lab/NAME/report.md, its plots and results.json."""
    from mlsd.lab import run_experiment

    report = run_experiment(name, Settings().home, quick=quick, console=console)
    text = report.read_text(encoding="utf-8")
    answer = next((p for p in text.split("\n\n") if p.startswith("**Answer**")), "")
    console.print(answer, markup=False, highlight=False)
    console.print(f"\nreport: {report}\nplots and results.json beside it")


def register(app: typer.Typer) -> None:
    """Attach `mlsd lab`."""
    app.add_typer(lab, name="lab")
