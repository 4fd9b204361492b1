"""`mlsd train`: the handbook protocol with progress, a report and registration."""

from __future__ import annotations

import getpass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlsd.errors import ValidationError
from mlsd.registry.formats import FLAVORS

if TYPE_CHECKING:
    from rich.console import Console

    from mlsd.training.pipeline import TrainResult

MODEL_CHOICES = (*FLAVORS, "both")
METRIC_CHOICES = ("average_precision", "auc_roc", "card_precision", "mean_rank")
THRESHOLD_CHOICES = ("alert_budget", "expected_cost")


def _date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"{value!r} is not a date (YYYY-MM-DD)", field="train_start"
        ) from None


def train(
    dataset: Path | None = typer.Option(
        None, "--dataset", help="Dataset folder (default: $MLSD_HOME/dataset)."
    ),
    train_start: str | None = typer.Option(
        None,
        "--train-start",
        help="First training day, YYYY-MM-DD (default: the handbook's 2018-07-25 if the "
        "dataset covers it, else the latest block that fits).",
    ),
    model: str = typer.Option("both", "--model", help="lightgbm, logistic or both."),
    folds: int = typer.Option(4, "--folds", help="Prequential validation folds."),
    select_by: str = typer.Option(
        "mean_rank",
        "--select-by",
        help="mean_rank (of validation AUC, AP and CP@100), average_precision, auc_roc or "
        "card_precision.",
    ),
    threshold_policy: str = typer.Option(
        "alert_budget",
        "--threshold-policy",
        help="How the decision threshold is chosen on the validation folds: alert_budget "
        "(at most --alert-budget cards a day on average) or expected_cost (fraud euros caught "
        "minus --review-cost per alert).",
    ),
    alert_budget: int = typer.Option(
        100, "--alert-budget", help="alert_budget: cards reviewed per day (K)."
    ),
    review_cost: float = typer.Option(
        5.0, "--review-cost", help="expected_cost: euros one alert's review costs."
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="One parameter set per model instead of the grid: several times faster.",
    ),
    seed: int = typer.Option(0, "--seed", help="Training seed."),
    threads: int = typer.Option(
        1,
        "--threads",
        help="LightGBM threads (fixed for determinism; 1 is fastest on a busy host).",
    ),
    build: bool = typer.Option(
        True, "--build/--no-build", help="Apply the feature definitions and rebuild the tables."
    ),
    register: bool = typer.Option(True, "--register/--no-register", help="Register the model."),
    promote: bool = typer.Option(
        False,
        "--promote",
        help="Promote it to champion through the gate (the champion is re-scored on the same "
        "test rows); a refusal prints the failed bounds and exits with code 8.",
    ),
    name: str = typer.Option("fraud", "--name", help="Registered model name."),
) -> None:
    """Train fraud models on the handbook protocol, report, and register the best one.

    The full grid takes minutes on the default dataset (a progress bar shows the time
    left); --quick trains one parameter set per model, about a minute on 2 cores.
    """
    import time

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from mlsd.features.store import FeatureStore
    from mlsd.settings import get_settings
    from mlsd.training.config import TrainConfig
    from mlsd.training.dataset import read_dataset_manifest
    from mlsd.training.demo import QUICK_GRIDS
    from mlsd.training.pipeline import train as run_training
    from mlsd.training.report import metrics_table, write_report

    if model not in MODEL_CHOICES:
        raise ValidationError(f"--model must be one of {MODEL_CHOICES}", field="model")
    if select_by not in METRIC_CHOICES:
        raise ValidationError(f"--select-by must be one of {METRIC_CHOICES}", field="select_by")
    if threshold_policy not in THRESHOLD_CHOICES:
        raise ValidationError(
            f"--threshold-policy must be one of {THRESHOLD_CHOICES}", field="threshold_policy"
        )
    settings = get_settings()
    folder = dataset or settings.path("dataset")
    models = list(FLAVORS) if model == "both" else [model]
    extra = {"grids": QUICK_GRIDS} if quick else {}
    config = TrainConfig.make(
        dataset=str(folder),
        train_start=_date(train_start),
        n_folds=folds,
        models=models,
        selection_metric=select_by,
        threshold_policy=threshold_policy,
        alert_budget=alert_budget,
        review_cost=review_cost,
        seed=seed,
        num_threads=threads,
        **extra,
    )
    read_dataset_manifest(folder)  # a clear NotFoundError before any work
    console = Console()
    steps = sum(len(config.grids.get(m, [])) * config.n_folds + 1 for m in models)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("building feature tables", total=steps + 1)
        store = FeatureStore.open(settings)
        try:
            if build:
                store.apply()
                store.build(folder)
            bar.update(task, advance=1, description="joining features point-in-time")

            def step(message: str) -> None:
                bar.update(
                    task,
                    description=_describe(message),
                    advance=1 if "features" not in message else 0,
                )

            result = run_training(config, store, progress=step)
        finally:
            store.close()
    console.print(metrics_table(result))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    paths = write_report(result, settings.path("reports"), f"train-{stamp}")
    console.print(f"PR curve: {paths['pr_curve']}")
    console.print(f"summary:  {paths['summary']}")
    if not register:
        return
    _register(result, name, promote, console)


def _describe(message: str) -> str:
    """A short progress line: 'validating lightgbm' rather than its whole parameter dict."""
    flavor, _, rest = message.partition(" ")
    return f"validating {flavor}" if " fold " in f" {rest}" else message


def _register(result: TrainResult, name: str, promote: bool, console: Console) -> None:
    from mlsd.errors import GateRejectedError
    from mlsd.registry import Registry
    from mlsd.registry.gate import default_gate
    from mlsd.registry.render import decision_table
    from mlsd.training.pipeline import promote_result, register_result

    registry = Registry.open()
    try:
        mv = register_result(registry, result, name)
        console.print(f"registered [bold]{mv.uri}[/] ({mv.flavor})")
        if mv.threshold is not None:
            console.print(f"threshold {mv.threshold.describe()}")
        if not promote:
            return
        try:
            decision = promote_result(
                registry,
                result,
                mv,
                gate=default_gate(),
                actor=_actor(),
                reason="mlsd train --promote",
            )
        except GateRejectedError as exc:
            refused = registry.decisions(name)
            if refused and refused[-1].version == mv.version:
                console.print(decision_table(refused[-1]))
            console.print(f"[yellow]not promoted:[/] {exc.message}")
            raise typer.Exit(exc.exit_code) from None
        console.print(decision_table(decision))
        console.print(f"promoted {mv.uri} to [bold]{name}@champion[/]")
    finally:
        registry.close()


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def register(app: typer.Typer) -> None:
    """Add the `train` command."""
    app.command("train")(train)
