"""`mlsd predictions summary`: what the prediction log stored, read without writing it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from mlsd.errors import ValidationError

app = typer.Typer(help="The prediction log, read-only (a live server's log is safe to read).")


def _when(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"not an ISO time: {value!r}", field=field) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("summary")
def summary(
    since: str | None = typer.Option(None, "--since", help="ISO time (UTC if no zone)."),
    until: str | None = typer.Option(None, "--until", help="ISO time, exclusive."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Volume, versions, fraud and degraded shares, latency of the stored predictions."""
    from rich.console import Console
    from rich.table import Table

    from mlsd.predlog import open_reader, summarize
    from mlsd.settings import get_settings

    start, end = _when(since, "since"), _when(until, "until")
    reader = open_reader(get_settings())
    try:
        figures = summarize(reader.read(start, end)).to_dict()
    finally:
        reader.close()
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    table = Table(title="prediction log (stored records)")
    table.add_column("figure")
    table.add_column("value")
    for key, value in figures.items():
        table.add_row(key, str(value))
    Console().print(table)


def register(root: typer.Typer) -> None:
    """Add the `predictions` group."""
    root.add_typer(app, name="predictions")
