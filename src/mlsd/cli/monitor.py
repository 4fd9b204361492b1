"""`mlsd monitor drift`: per-feature drift of a prediction-log window against the reference."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import typer

from mlsd.errors import ValidationError

if TYPE_CHECKING:
    from mlsd.monitoring.drift import DriftReport, FeatureDrift

app = typer.Typer(
    help="Monitoring: drift against each version's profile, performance as labels land, "
    "fairness by segment, incident reports."
)

COLOURS = {"stable": "green", "moderate": "yellow", "major": "bold red"}


def _when(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"--{field}: not an ISO date or time: {value!r} (e.g. 2018-08-01 or 2018-08-01T12:00)",
            field=field,
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _test(row: FeatureDrift) -> tuple[str, str]:
    if row.ks is not None:
        return f"KS {row.ks:.3f}", f"{row.ks_pvalue:.2g}"
    if row.chi2 is not None:
        return f"chi2 {row.chi2:.1f}", f"{row.chi2_pvalue:.2g}"
    return "", ""


def _table(report: DriftReport) -> object:
    from rich.table import Table

    version = "" if report.version is None else f"/{report.version}"
    table = Table(title=f"drift of {report.model}{version}: {report.n_rows:,} predictions")
    for column in ("feature", "kind", "PSI", "JS (bits)", "KL", "test", "p", "missing", "drift"):
        table.add_column(column, justify="left" if column in ("feature", "kind") else "right")
    rows = list(report.ranked())
    extra = [r for r in (report.score, report.multivariate) if r is not None]
    for row in rows + extra:
        test, p = _test(row)
        colour = COLOURS[row.severity]
        name = {"score": "(score)", "pca_error": "(joint: PCA error)"}.get(row.name, row.name)
        table.add_row(
            name, row.kind, f"{row.psi:.4f}", f"{row.js:.4f}", f"{row.kl:.4f}", test, p,
            f"{row.missing_ref:.1%} -> {row.missing_window:.1%}",
            f"[{colour}]{row.severity}[/]",
        )  # fmt: skip
    return table


@app.command("drift")
def drift(
    start: str = typer.Option(..., "--from", help="Window start, ISO date or time (UTC)."),
    end: str = typer.Option(..., "--to", help="Window end, exclusive, ISO date or time (UTC)."),
    model: str | None = typer.Option(None, "--model", help="Only this model name."),
    version: int | None = typer.Option(None, "--version", help="Only this version."),
    every: str | None = typer.Option(
        None, "--every", help="Tumbling windows of this length (e.g. 30m, 6h, 1d): one line each."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the reports as JSON."),
) -> None:
    """PSI, JS, KL, KS / chi-squared per feature, score and joint drift of a window.

    Each model version logged in the window is compared with its own reference profile
    (stored at registration). With --every, one line per tumbling window instead. Exit 3
    when the window is empty, the version unknown or registered without a profile.
    """
    from rich.console import Console

    from mlsd.monitoring.window import window_drift
    from mlsd.predlog import open_reader
    from mlsd.registry import Registry
    from mlsd.settings import get_settings

    settings = get_settings()
    window = (_when(start, "from"), _when(end, "to"))
    if every is not None:
        _over_time(window, _duration(every), model, version, as_json)
        return
    reader = open_reader(settings)
    try:
        with Registry.open(settings) as registry:
            reports = window_drift(registry, reader, *window, model=model, version=version)
    finally:
        reader.close()
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in reports], indent=2))
        return
    console = Console()
    for report in reports:
        console.print(_table(report))
        drifted = report.drifted()
        console.print(
            f"drifted (PSI > 0.1): {', '.join(drifted)}" if drifted else "no feature drifted"
        )
        for note in report.notes:
            console.print(f"[yellow]note:[/] {note}")


def _duration(value: str) -> timedelta:
    import re

    found = re.fullmatch(r"(\d+)([mhd])", value.strip())
    if found is None or int(found.group(1)) == 0:
        raise ValidationError(
            f"--every: expected a length such as 30m, 6h or 1d, not {value!r}", field="every"
        )
    unit = {"m": "minutes", "h": "hours", "d": "days"}[found.group(2)]
    return timedelta(**{unit: int(found.group(1))})


def _over_time(
    window: tuple[datetime | None, datetime | None],
    every: timedelta,
    model: str | None,
    version: int | None,
    as_json: bool,
) -> None:
    """One line per tumbling window: rows, score and joint PSI, the most drifted feature."""
    from rich.console import Console
    from rich.table import Table

    from mlsd.monitoring.window import tumbling_drift
    from mlsd.predlog import open_reader
    from mlsd.registry import Registry
    from mlsd.settings import get_settings

    start, end = window
    if start is None or end is None:  # both are required options; kept for the type checker
        raise ValidationError("--every needs --from and --to", field="every")
    settings = get_settings()
    reader = open_reader(settings)
    try:
        with Registry.open(settings) as registry:
            windows = tumbling_drift(
                registry, reader, start, end, every, model=model, version=version
            )
    finally:
        reader.close()
    if as_json:
        rows = [
            {"start": a.isoformat(), "end": b.isoformat(), "reports": [r.to_dict() for r in rs]}
            for a, b, rs in windows
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"drift every {every} from {start} to {end}")
    for column in ("window start", "version", "rows", "score PSI", "joint PSI", "most drifted"):
        table.add_column(column)
    for at, _, reports in windows:
        if not reports:
            table.add_row(at.isoformat(), "", "0", "", "", "no data")
        for r in reports:
            top = r.ranked()[0]
            colour = COLOURS[top.severity]
            table.add_row(
                at.isoformat(), f"{r.model}/{r.version}", f"{r.n_rows:,}",
                "" if r.score is None else f"{r.score.psi:.3f}",
                "" if r.multivariate is None else f"{r.multivariate.psi:.3f}",
                f"[{colour}]{top.name} {top.psi:.3f}[/]",
            )  # fmt: skip
    Console().print(table)


def register(root: typer.Typer) -> None:
    """Add the `monitor` group."""
    from mlsd.cli import monitor_fairness, monitor_performance, monitor_report

    for module in (monitor_performance, monitor_fairness, monitor_report):  # own modules
        module.register(app)
    root.add_typer(app, name="monitor")
