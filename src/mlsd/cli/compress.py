"""`mlsd compress`: compressed variants of a registered model, measured, registered, reported."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from mlsd.settings import Settings

console = Console()


def compress(
    source: str = typer.Option(
        ..., "--from", help="The model to compress: NAME@ALIAS or NAME/VERSION (fraud@champion)."
    ),
    method: list[str] = typer.Option(
        [],
        "--method",
        help="A method to run (repeat for several); default: every one that applies. "
        "fewer_trees smaller_trees pruned_ensemble distilled_gbm distilled_mlp mlp fp16 "
        "int8_dynamic int8_static int8_static_per_channel int8_mixed.",
    ),
    min_ap: float | None = typer.Option(
        None,
        "--min-ap",
        help="Accuracy floor: refuse (register nothing) if a variant's test "
        "average precision is below it.",
    ),
    register: bool = typer.Option(True, "--register/--no-register", help="Register variants."),
    calibration_rows: int = typer.Option(2048, help="Rows of the static int8 calibration set."),
    fraud_share: float = typer.Option(0.1, help="Share of frauds in the calibration set."),
    core_hour_usd: float = typer.Option(
        0.05, "--core-hour-usd", help="Assumed price of one CPU core-hour, for the cost column."
    ),
    quick: bool = typer.Option(False, "--quick", help="Short timings and MLP training."),
    out: Path | None = typer.Option(
        None, help="Report folder (default: $MLSD_HOME/reports/compress-NAME-vN)."
    ),
) -> None:
    """Make, measure and register compressed variants; write one table and one Pareto plot."""
    from mlsd.compression.measure import Budget
    from mlsd.compression.methods import Options
    from mlsd.compression.run import AccuracyFloorError, Compression
    from mlsd.compression.run import compress as run_compress
    from mlsd.compression.width_probe import probe
    from mlsd.errors import ValidationError
    from mlsd.features.store import FeatureStore
    from mlsd.lab.compression import CompressionExperiment, findings
    from mlsd.lab.report import write_report
    from mlsd.registry import Registry

    if calibration_rows < 1:
        raise ValidationError(
            "the calibration set is empty (--calibration-rows < 1)", field="calibration_rows"
        )
    if not 0.0 <= fraud_share <= 1.0:
        raise ValidationError("--fraud-share must be within [0, 1]", field="fraud_share")
    settings = Settings()
    options = Options(
        methods=tuple(method) or None,
        calibration_rows=calibration_rows,
        fraud_share=fraud_share,
        mlp_iterations=15 if quick else 60,
    )

    def write(result: Compression) -> Path:
        folder = out or settings.path(
            f"reports/compress-{result.source.name}-v{result.source.version}"
        )
        made = findings(result, quick=quick, widths=probe(0.05 if quick else 0.3))
        return write_report(folder, CompressionExperiment(), made, quick=quick)

    store = FeatureStore.open(settings)
    try:
        with Registry.open(settings) as registry, console.status("compressing") as status:
            try:
                result = run_compress(
                    registry,
                    source,
                    store,
                    options=options,
                    budget=Budget.quick() if quick else Budget(),
                    min_ap=min_ap,
                    register=register,
                    usd_per_core_hour=core_hour_usd,
                    step=lambda text: status.update(text),
                )
            except AccuracyFloorError as exc:
                console.print(f"report of the refused run: {write(exc.compression)}")
                raise
    finally:
        store.close()
    report = write(result)
    text = report.read_text(encoding="utf-8")
    console.print(
        next(p for p in text.split("\n\n") if p.startswith("**Answer**")),
        markup=False,
        highlight=False,
    )
    for name, mv in result.registered.items():
        console.print(f"registered {mv.uri}: {name}")
    for name, why in result.skipped.items():
        console.print(f"skipped {name}: {why}")
    console.print(f"\nreport: {report}\nPareto plot and results.json beside it")


def register(app: typer.Typer) -> None:
    """Attach `mlsd compress`."""
    app.command("compress")(compress)
