"""`mlsd monitor performance`: true metrics per window as labels land, and the estimate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from mlsd.monitoring.performance import WindowPerformance


def _f(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _lag(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds / 86_400:.1f} d" if seconds >= 86_400 else f"{seconds / 3600:.1f} h"


def _estimate(r: WindowPerformance) -> str:
    if r.estimate_state != "ok":
        return r.estimate_state.replace("_", " ")
    return _f(r.estimated_auc)


def _table(rows: list[WindowPerformance], title: str) -> object:
    from rich.table import Table

    table = Table(title=title)
    k = rows[0].top_k if rows else 100
    for column in (
        "window start", "version", "variant", "preds", "labelled", "lag", "AUC", "est. AUC",
        "est.-true", "AP", f"CP@{k}", "blocks", "block prec.", "fraud EUR blocked",
    ):  # fmt: skip
        table.add_column(
            column, justify="left" if column in ("window start", "variant") else "right"
        )
    for r in rows:
        state = {"no_labels": "[yellow]no labels yet[/]", "one_class": "[yellow]one class[/]"}
        table.add_row(
            f"{r.start:%Y-%m-%d %H:%M}", f"{r.model}/{r.version}", r.variant,
            f"{r.n_predictions:,}",
            f"{r.label_coverage:.0%}", _lag(r.label_lag_seconds),
            state.get(r.state, _f(r.auc)), _estimate(r), _f(r.estimate_error),
            _f(r.average_precision), _f(r.card_precision, 2), f"{r.blocks:,}",
            _f(r.block_precision, 2), f"{r.fraud_eur_blocked:,.0f} / {r.fraud_eur:,.0f}",
        )  # fmt: skip
    return table


def performance(
    start: str = typer.Option(..., "--from", help="Range start, ISO date or time (UTC)."),
    end: str = typer.Option(..., "--to", help="Range end, exclusive, ISO date or time (UTC)."),
    window: str = typer.Option("1d", "--window", help="Tumbling window length (30m, 6h, 1d)."),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Count only labels available by then (ISO; default now)."
    ),
    model: str | None = typer.Option(None, "--model", help="Only this model name."),
    version: int | None = typer.Option(None, "--version", help="Only this version."),
    dataset: Path | None = typer.Option(
        None, "--dataset", help="Where the labels are (default: $MLSD_HOME/dataset)."
    ),
    top_k: int = typer.Option(100, "--top-k", help="k of Card Precision@k (cards a day)."),
    triggers_out: Path | None = typer.Option(
        None, "--triggers-out", help="Append retraining-trigger events here (JSON lines)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print windows and triggers as JSON."),
) -> None:
    """AUC, AP, Card Precision@k, block precision and fraud EUR blocked per window, on the
    labels landed by --as-of, with label coverage and lag; the label-free (CBPE) AUC
    estimate beside them, and its error once labels are in.

    Labels are joined to the prediction log by transaction id. A window whose labels have
    not landed says "no labels yet"; a version without a calibrated profile shows "no
    profile" / "no calibration" for the estimate. Exit 3 when the range is empty, the
    version unknown or the dataset missing; exit 2 for a bad date or window.
    """
    from rich.console import Console

    from mlsd.cli.monitor import _duration, _when
    from mlsd.monitoring.performance import (
        DatasetLabels,
        RegistryReferences,
        flatten,
        performance_windows,
    )
    from mlsd.monitoring.triggers import evaluate_triggers, write_jsonl
    from mlsd.predlog import open_reader
    from mlsd.registry import Registry
    from mlsd.settings import get_settings

    settings = get_settings()
    first, last = _when(start, "from"), _when(end, "to")
    every = _duration(window)
    evaluated = _when(as_of, "as-of") or datetime.now(UTC)
    if first is None or last is None:  # required options; kept for the type checker
        raise typer.BadParameter("--from and --to are required")
    labels = DatasetLabels(dataset or settings.path("dataset"))
    reader = open_reader(settings)
    try:
        with Registry.open(settings) as registry:
            windows = performance_windows(
                RegistryReferences(registry), reader, labels, first, last, every,
                as_of=evaluated, model=model, version=version, top_k=top_k,
            )  # fmt: skip
    finally:
        reader.close()
    rows = flatten(windows)
    triggers = evaluate_triggers(rows)
    if triggers_out is not None:
        write_jsonl(triggers, triggers_out)
    if as_json:
        payload = {
            "as_of": evaluated.isoformat(),
            "windows": [r.to_dict() for r in rows],
            "empty_windows": [a.isoformat() for a, _, rs in windows if not rs],
            "triggers": [t.to_dict() for t in triggers],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    console = Console()
    console.print(
        _table(rows, f"performance every {window}, labels as of {evaluated:%Y-%m-%d %H:%M}")
    )
    empty = sum(1 for _, _, rs in windows if not rs)
    if empty:
        console.print(f"{empty} window(s) without predictions (no data)")
    for t in triggers:
        console.print(
            f"[bold red]retrain trigger[/] {t.rule}: {t.model}/{t.version} {t.variant} "
            f"{t.metric} {t.value:.3f} vs {t.threshold:.3f} on {t.window_start:%Y-%m-%d %H:%M} "
            f"({t.n_labelled:,} labelled, {t.frauds} frauds)"
        )
    if not triggers:
        console.print("no retraining trigger fired")


def register(monitor: typer.Typer) -> None:
    """Add `performance` to the `monitor` group."""
    monitor.command("performance")(performance)
