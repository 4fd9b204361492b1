"""`mlsd features ...`: apply definitions, build offline tables, materialize, read, check parity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

features_app = typer.Typer(
    help="Feature store: definitions, batch build, materialization, online reads, parity.",
    no_args_is_help=True,
    rich_markup_mode=None,  # flags shown as `--json`, `--x / --no-x` (see mlsd.cli.main)
)
console = Console()


def _columns() -> tuple[Any, ...]:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


def _need_views(store: Any) -> None:
    """NotFoundError (exit 3) with the next step when no feature view is applied yet."""
    from mlsd.errors import NotFoundError

    if not store.view_versions():
        raise NotFoundError(
            "no feature views applied yet: run `mlsd features apply` and "
            "`mlsd features build DATASET` first",
            field="view",
        )


def _when(value: str | None, name: str) -> Any:
    from mlsd.features.vectors import to_datetime

    return None if value is None else to_datetime(value, name)


@features_app.command("apply")
def apply(
    path: Path | None = typer.Argument(
        None,
        help="A folder (or .py file) of definitions as Python code: its Entities, Sources "
        "and FeatureViews are imported, validated and registered together. Default: the "
        "handbook's views (mlsd/features/handbook.py).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Import and validate PATH, register nothing; print the views."
    ),
) -> None:
    """Register feature views; print each view's version (content hash).

    A bad definition (a missing column, a window with no time column, a type mismatch,
    a derived feature over an unknown aggregate, two views with one name) is named with
    its view and field, exit code 2, and nothing is applied.
    """
    from mlsd.features.store import FeatureStore

    if dry_run:
        from mlsd.features.handbook import HANDBOOK_VIEWS
        from mlsd.features.repo import check_repo, validate

        views = list(HANDBOOK_VIEWS) if path is None else check_repo(path).views
        validate(views)
        for view in views:
            stream = "streamable" if view.streamable else "batch only"
            kind = f"{view.kind}, {stream}" if view.kind in ("window", "sql") else view.kind
            console.print(f"{view.name}: {view.version}  ({kind}, {len(view.features)} features)")
        return
    store = FeatureStore.open()
    try:
        before = store.view_versions()
        applied = store.apply() if path is None else store.apply_path(path)
        for name, version in applied.items():
            note = "" if before.get(name) == version else "  (new version)"
            console.print(f"{name}: {version}{note}")
    finally:
        store.close()


@features_app.command("build")
def build(
    dataset: Path | None = typer.Argument(
        None,
        help="Dataset folder (mlsd simulate --out), for views reading a dataset's "
        "transactions (the handbook's); views with their own source read it in place.",
    ),
) -> None:
    """Compute the offline feature tables (DuckDB, one query per view) from each view's
    source: a dataset's transactions, Parquet files, a query."""
    from mlsd.features.store import FeatureStore

    store = FeatureStore.open()
    try:
        if not store.view_versions():
            store.apply()
        with console.status("building feature tables"):
            report = store.build(dataset)
        for name, rows in report.rows.items():
            console.print(f"{name} ({report.versions[name]}): {rows:,} rows")
        console.print(f"built in {report.seconds:.2f} s")
    finally:
        store.close()


@features_app.command("materialize")
def materialize(
    end: str | None = typer.Option(None, "--end", help="UTC-aware ISO time (default: all)."),
    chunk_days: float = typer.Option(7.0, "--chunk-days", help="Days per atomic chunk."),
    rebuild: bool = typer.Option(
        True,
        "--rebuild/--no-rebuild",
        help="When the online store holds another dataset's features: clear it and "
        "rematerialize from the start (default), or refuse with exit code 4.",
    ),
) -> None:
    """Copy offline rows since the watermark into the online store, chunk by chunk."""
    from rich.progress import Progress

    from mlsd.features.store import FeatureStore

    until = _when(end, "end")  # a bad --end is named before anything else
    store = FeatureStore.open()
    try:
        _need_views(store)
        with Progress(*_columns(), console=console, transient=True) as bar:
            tasks: dict[str, Any] = {}

            def advance(view: str, done: int, total: int) -> None:
                if view not in tasks:
                    tasks[view] = bar.add_task(f"materializing {view}", total=total)
                bar.update(tasks[view], completed=done)

            report = store.materialize(
                until,
                advance,
                chunk_days=chunk_days,
                on_switch="rebuild" if rebuild else "refuse",
            )
        if report.rebuilt:
            console.print(f"[yellow]rebuilt:[/] {report.rebuilt}")
        for name, rows in report.rows_written.items():
            mark = report.watermarks.get(name)
            console.print(f"{name}: {rows:,} rows in {report.chunks[name]} chunks, up to {mark}")
        console.print(f"materialized into {store.describe_online()} in {report.seconds:.2f} s")
    finally:
        store.close()


@features_app.command("get")
def get(
    customer: int = typer.Option(..., "--customer", help="CUSTOMER_ID"),
    terminal: int = typer.Option(..., "--terminal", help="TERMINAL_ID"),
    amount: float = typer.Option(..., "--amount", help="TX_AMOUNT"),
    at: str = typer.Option(..., "--at", help="TX_DATETIME, UTC-aware ISO time"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Read one online feature vector (handbook features) for a transaction."""
    from mlsd.features import HANDBOOK_FEATURES
    from mlsd.features.store import FeatureStore

    request = {
        "CUSTOMER_ID": customer,
        "TERMINAL_ID": terminal,
        "TX_AMOUNT": amount,
        "TX_DATETIME": _when(at, "at"),
    }
    store = FeatureStore.open()
    try:
        vec = store.online_vectors([request], list(HANDBOOK_FEATURES))
    finally:
        store.close()
    rows = [
        {"feature": f, "value": float(vec.values[0, i]), "status": vec.status[0][f]}
        for i, f in enumerate(vec.features)
    ]
    if as_json:
        typer.echo(json.dumps({"features": rows, "view_versions": vec.view_versions}))
        return
    from rich.table import Table

    table = Table("feature", "value", "status")
    for row in rows:
        table.add_row(str(row["feature"]), f"{row['value']:.4f}", str(row["status"]))
    console.print(table)


@features_app.command("parity")
def parity(
    sample: int = typer.Option(200, "--sample", min=1, help="Entities per view."),
    replay: bool = typer.Option(
        False,
        "--replay/--live",
        help="--live (default): check the online store serving reads, as it is. --replay: "
        "replay the offline tables into a scratch store at --checkpoints times (tests "
        "materialization itself; the served store is not read).",
    ),
    checkpoints: int = typer.Option(4, "--checkpoints", min=1, help="Replay checkpoints."),
) -> None:
    """Compare the online store's values with the offline point-in-time values."""
    from rich.progress import Progress

    from mlsd.errors import IntegrityError
    from mlsd.features.store import FeatureStore

    store = FeatureStore.open()
    try:
        _need_views(store)
        if replay:
            with Progress(*_columns(), console=console, transient=True) as bar:
                task = bar.add_task("replaying", total=checkpoints)
                report = store.parity(
                    checkpoints, sample, progress=lambda d, t: bar.update(task, completed=d)
                )
        else:
            with console.status("reading the online store"):
                report = store.live_parity(sample)
    finally:
        store.close()
    where = "checkpoints" if replay else "watermarks"
    console.print(f"checked {report.store}")
    console.print(
        f"compared {report.compared:,} values at {len(report.checkpoints)} {where}: "
        f"{report.agreement:.2%} agree"
    )
    for problem in report.problems:
        console.print(f"[red]problem:[/] {problem}")
    for example in report.examples:
        console.print(example)
    if not report.ok:
        what = [f"{report.mismatches} online values differ from offline"] * bool(report.mismatches)
        raise IntegrityError("; ".join([*what, *report.problems]), field="online_store")


def register(app: typer.Typer) -> None:
    """Attach `mlsd features`."""
    app.add_typer(features_app, name="features")
