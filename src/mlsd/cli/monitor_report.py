"""`mlsd monitor report`: what changed in a window of traffic, as Markdown and PNG."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from mlsd.cli.monitor import _when
from mlsd.errors import ValidationError


def report(
    start: str = typer.Option(..., "--from", help="Window start, ISO date or time (UTC)."),
    end: str = typer.Option(..., "--to", help="Window end, exclusive, ISO date or time (UTC)."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder of the report (default: $MLSD_HOME/reports/incident-FROM)."
    ),
    labels: list[Path] | None = typer.Option(
        None,
        "--labels",
        metavar="DIR",
        help="Dataset folder of the labels; repeat for several (default: "
        "$MLSD_HOME/dataset when it exists, else the report has no label section).",
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Evaluation time: only labels known by then (default: now)."
    ),
    model: str | None = typer.Option(None, "--model", help="Only this model name."),
    version: int | None = typer.Option(None, "--version", help="Only this version."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the report as JSON (the files are written too)."
    ),
) -> None:
    """An incident report of [--from, --to) against the window of the same length before:
    model versions serving, drift per feature against each version's reference profile and
    against the window before, score and decision distribution, confidence, latency, and
    AUC / AP on the labels known at the evaluation time.

    Writes report.md, report.json, scores.png, latency.png and features.png. A part
    without data says so in the report; exit 3 when the window holds no prediction or
    the given version is unknown, exit 2 on a bad option.
    """
    from rich.console import Console

    from mlsd.monitoring.labels import known_by, read_datasets
    from mlsd.monitoring.report import incident
    from mlsd.monitoring.report_files import write_incident
    from mlsd.monitoring.window import _check_window
    from mlsd.predlog import open_reader
    from mlsd.registry import Registry
    from mlsd.settings import get_settings

    first, last = _when(start, "from"), _when(end, "to")
    if first is None or last is None:  # required options; kept for the type checker
        raise ValidationError("--from and --to are required", field="from")
    _check_window(first, last)
    known = _when(as_of, "as_of") or datetime.now(UTC)
    settings = get_settings()
    folders = list(labels or [])
    if not folders and settings.path("dataset").is_dir():
        folders = [settings.path("dataset")]
    truth = known_by(read_datasets(folders)[0], known) if folders else None
    reader = open_reader(settings)
    try:
        frame = reader.read(first - (last - first), last)
    finally:
        reader.close()
    if model is not None and not frame.empty:
        frame = frame[frame["model"] == model]
    with Registry.open(settings) as registry:
        if version is not None:
            names = [model] if model else sorted(frame["model"].astype(str).unique())
            for name in names:
                registry.get(name, version)  # NotFoundError names it
            if not frame.empty:
                frame = frame[frame["version"].astype(str) == str(version)]
        result = incident(registry, frame, first, last, truth, as_of=known if folders else None)
    folder = out or settings.path("reports", f"incident-{first:%Y%m%dT%H%M%S}")
    path = write_incident(result, frame, folder)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False))
        return
    console = Console()
    for line in result.findings:
        console.print(f"- {line}", highlight=False)
    console.print(f"report: {path}")


def register(monitor: typer.Typer) -> None:
    """Add `report` to the `monitor` group."""
    monitor.command("report")(report)
