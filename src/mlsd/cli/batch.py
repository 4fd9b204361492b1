"""`mlsd score-batch`: the nightly path, the stream processor's batch twin.

    mlsd score-batch DATASET [--start DAY --end DAY] [--model fraud@champion]
                     [--out FOLDER] [--log-predictions] [--build]

Scores the days' transactions with the same model and scoring pipeline as the stream,
features from the feature store's offline tables (point-in-time join, DuckDB): see
docs/streaming.md.
"""

from __future__ import annotations

from pathlib import Path

import typer


def score_batch(
    dataset: Path = typer.Argument(..., help="A dataset folder (mlsd simulate / mlsd import)."),
    start: str | None = typer.Option(None, "--start", help="First day, YYYY-MM-DD."),
    end: str | None = typer.Option(None, "--end", help="Last day, YYYY-MM-DD (inclusive)."),
    model: str = typer.Option("fraud@champion", "--model", help="NAME@ALIAS or NAME/VERSION."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder of the score files (default MLSD_HOME/scores)."
    ),
    log_predictions: bool = typer.Option(
        False, "--log-predictions", help="Also log each prediction (entry point `batch`)."
    ),
    build: bool = typer.Option(
        False, "--build", help="Build the offline feature tables from DATASET first."
    ),
) -> None:
    """Score days of Parquet transactions in batch: one score file per day (transaction
    id, score, decision, model version)."""
    from mlsd.settings import get_settings
    from mlsd.streaming.batch import score_batch as run

    report = run(
        get_settings(),
        dataset,
        start,
        end,
        model_ref=model,
        out_dir=out,
        log_predictions=log_predictions,
        build=build,
    )
    where = report.files[0].parent if report.files else "(no rows: nothing written)"
    typer.echo(
        f"scored {report.rows:,} transactions with {report.model}/{report.version} in "
        f"{report.seconds:.1f}s ({report.rows_per_s:,.0f} rows/s; features "
        f"{report.feature_seconds:.1f}s, scoring {report.scoring_seconds:.1f}s): "
        f"{report.frauds:,} decided fraud; {len(report.files)} day file(s) in {where}"
        + (f"; {report.logged:,} predictions logged" if log_predictions else "")
    )


def register(root: typer.Typer) -> None:
    """Add `score-batch`."""
    root.command("score-batch")(score_batch)
