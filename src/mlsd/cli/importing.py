"""`mlsd import`: bring your own transactions (Parquet or CSV) into a dataset folder."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import typer

from mlsd.errors import ValidationError


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours or not theirs:
            message = f"--map takes MLSD_COLUMN=SOURCE_COLUMN, got {pair!r}"
            raise ValidationError(message, field="map")
        mapping[ours.strip()] = theirs.strip()
    return mapping


def import_command(
    source: Path = typer.Argument(..., help="A .parquet or .csv file, or a folder of Parquet."),
    out: Path = typer.Option(..., "--out", help="Dataset folder to create (must be empty)."),
    mapping: list[str] = typer.Option(
        [], "--map", help="MLSD_COLUMN=SOURCE_COLUMN, repeatable (e.g. TX_DATETIME=ts)."
    ),
    label_delay_days: float = typer.Option(
        7.0, "--label-delay-days", help="Days until a label is known (without LABEL_AVAILABLE_AT)."
    ),
    assume_timezone: str | None = typer.Option(
        None, "--assume-timezone", help="The zone of naive timestamps (refused without it)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Validate external transactions into an mlsd dataset: one file per day whatever the
    input order, every rejected row counted with its reason (rejected.parquet), and a
    manifest naming the source file and its sha256."""
    from rich.console import Console
    from rich.table import Table

    from mlsd.data.importing import REJECTED_FILE, import_transactions

    report = import_transactions(
        source,
        out,
        columns=_mapping(mapping),
        label_delay=timedelta(days=label_delay_days),
        assume_timezone=assume_timezone,
        overwrite=overwrite,
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    console = Console()
    table = Table(title=f"imported {report.source} -> {report.out}")
    table.add_column("what")
    table.add_column("rows", justify="right")
    table.add_row("read", f"{report.rows_in:,}")
    period = f"{report.days} days, {report.start_date}..{report.end_date}"
    table.add_row(f"written ({period})", f"{report.rows_out:,}")
    for reason, n in sorted(report.rejected.items()):
        table.add_row(f"rejected: {reason}", f"{n:,}")
    console.print(table)
    if report.rejected:
        console.print(f"rejected rows and their reasons: {Path(report.out) / REJECTED_FILE}")


def register(root: typer.Typer) -> None:
    """Add `import`."""
    root.command("import")(import_command)
