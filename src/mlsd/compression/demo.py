"""The compression step of `mlsd demo`: distil the champion, register the student, compare."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from mlsd.settings import Settings


def demo_step(settings: Settings, console: Console, name: str = "fraud") -> dict[str, Any]:
    """Distil `name@champion` into a small GBM student, register it, print both rows.

    The student learns the champion's scores on the training days and the unlabelled delay
    days; both are measured on the champion's own test block and timed in ONNX Runtime (one
    thread). A few seconds; the full report is `mlsd compress` / `mlsd lab run compression`.
    """
    from rich.table import Table

    from mlsd.compression.measure import Budget
    from mlsd.compression.methods import Options
    from mlsd.compression.run import compress
    from mlsd.features.store import FeatureStore
    from mlsd.registry import Registry

    store = FeatureStore.open(settings)
    try:
        with Registry.open(settings) as registry:
            result = compress(
                registry,
                f"{name}@champion",
                store,
                options=Options(methods=("distilled_gbm",)),
                budget=Budget.quick(),
            )
    finally:
        store.close()
    table = Table(title="compression: the champion and its distilled student (test block)")
    for column in ("model", "AP", "AUC", "CP@100", "p50 µs (1 row)", "rows/s @1024", "size KB"):
        table.add_column(column, justify="left" if column == "model" else "right")
    student = result.registered[result.variants[0].name]
    labels = {
        f"source v{result.source.version}": f"{result.source.uri} (champion)",
        result.variants[0].name: f"{student.uri} ({result.variants[0].name})",
    }
    rows = [m for m in result.measured if m.runtime == "onnxruntime"]
    for m in rows:
        table.add_row(
            labels[m.variant],
            f"{m.average_precision:.3f}",
            f"{m.auc_roc:.3f}",
            f"{m.card_precision_at_100:.3f}",
            f"{m.p50_us:.1f}",
            f"{m.rows_per_s[1024]:,.0f}",
            f"{m.size_bytes / 1024:,.0f}",
        )
    console.print(table)
    source, variant = rows
    console.print(
        f"The student ({result.variants[0].params['n_estimators']} trees of "
        f"{result.variants[0].params['num_leaves']} leaves) learnt the champion's scores, no "
        f"label: {variant.size_bytes / source.size_bytes:.0%} of its size, "
        f"{variant.rows_per_s[1024] / source.rows_per_s[1024]:.1f}× its rows/s at batch 1,024 "
        f"(timings of a quick run on a shared machine: indicative), AP "
        f"{variant.average_precision - source.average_precision:+.3f}. Registered as "
        f"{student.uri}, lineage parent v{result.source.version}; not promoted."
    )
    return {"student": student.uri, "measured": [m.to_dict() for m in rows]}
