"""`mlsd monitor fairness`: false declines, recall and flag rate per region or age band."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlsd.cli.monitor import _when

if TYPE_CHECKING:
    from mlsd.monitoring.fairness import FairnessReport
    from mlsd.stats import Interval


def _pct(value: Interval | None) -> str:
    if value is None:
        return "no data"
    return f"{value.estimate:.2%} [{value.low:.2%}, {value.high:.2%}]"


def label_folders(labels: list[Path] | None) -> list[Path]:
    """The dataset folders holding the labels (default: $MLSD_HOME/dataset)."""
    from mlsd.settings import get_settings

    return list(labels) if labels else [get_settings().path("dataset")]


def _print(report: FairnessReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    title = (
        f"fairness of {report.model}/{report.version} by {report.by}: {report.labelled:,} "
        f"labelled of {report.scored:,} scored (labels known by {report.as_of:%Y-%m-%d %H:%M})"
    )
    table = Table(title=title)
    for column in ("segment", "labelled", "frauds", "false-positive rate", "recall", "flag rate"):
        table.add_column(column, justify="left" if column == "segment" else "right")
    for s in report.segments:
        table.add_row(s.segment, f"{s.labelled:,}", f"{s.frauds:,}", _pct(s.false_positive_rate),
                      _pct(s.recall), _pct(s.flag_rate))  # fmt: skip
    console.print(table)
    for g in report.gaps:
        if g.gap is None or g.low is None or g.high is None or g.p_value is None:
            console.print(f"gap of {g.metric}: no data ({g.reason})")
            continue
        console.print(
            f"gap of {g.metric}: {g.gap:.2%} ({g.highest} - {g.lowest}), 95 % CI "
            f"[{g.low:.2%}, {g.high:.2%}], p = {g.p_value:.3g} (against segments shuffled)"
        )
    console.print(f"[dim]intervals: Wilson per segment; gap: {report.interval}, "
                  f"{report.n_boot} resamples, seed {report.seed}[/]")  # fmt: skip
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")


def fairness(
    start: str = typer.Option(..., "--from", help="Window start, ISO date or time (UTC)."),
    end: str = typer.Option(..., "--to", help="Window end, exclusive, ISO date or time (UTC)."),
    by: str = typer.Option("region", "--by", help="Segment: region or age_band."),
    labels: list[Path] | None = typer.Option(
        None,
        "--labels",
        metavar="DIR",
        help="Dataset folder of the labels; repeat for several (default: $MLSD_HOME/dataset).",
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Evaluation time: only labels known by then (default: now)."
    ),
    model: str | None = typer.Option(None, "--model", help="Only this model name."),
    version: int | None = typer.Option(None, "--version", help="Only this version."),
    min_support: int = typer.Option(
        10,
        "--min-support",
        min=1,
        help="Rows a segment needs in a rate's denominator to be compared in the gap.",
    ),
    textfile: Path | None = typer.Option(
        None,
        "--textfile",
        help="Also write mlsd_fairness_gap gauges in Prometheus' text "
        "format here (node exporter's textfile collector).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the reports as JSON."),
) -> None:
    """False declines, recall and flag rate per region or age band, and the gaps.

    Per segment, of each model version answering in the window: false-positive (false
    decline) rate, recall and flag rate against the labels known at the evaluation time,
    and the gap between the highest and the lowest segment with its bootstrap interval
    (customers resampled) and p-value (segments shuffled among customers).

    Predictions are joined to the labels' transactions by transaction id. Exit 3 when the
    window holds no answered prediction, none is labelled yet, or the dataset has no
    segments; exit 2 on a bad option.
    """
    from mlsd.monitoring.fairness import (
        gauges_text,
        read_labels,
        segment_column,
        window_fairness,
    )
    from mlsd.monitoring.window import _check_window
    from mlsd.predlog import open_reader
    from mlsd.settings import get_settings

    segment_column(by)
    window = (_when(start, "from"), _when(end, "to"))
    _check_window(*window)
    known = _when(as_of, "as_of") or datetime.now(UTC)
    truth = read_labels(label_folders(labels), known)
    reader = open_reader(get_settings())
    try:
        frame = reader.read(*window)
    finally:
        reader.close()
    reports = window_fairness(
        frame, truth, by, as_of=known, start=window[0], end=window[1], model=model,
        version=version, min_support=min_support,
    )  # fmt: skip
    if textfile is not None:
        textfile.parent.mkdir(parents=True, exist_ok=True)
        textfile.write_text(gauges_text(reports), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in reports], indent=2))
        return
    for report in reports:
        _print(report)


def register(monitor: typer.Typer) -> None:
    """Add `fairness` to the `monitor` group."""
    monitor.command("fairness")(fairness)
