"""The compression step of `mlsd demo`: compress the champion, register the variant, compare.

A LightGBM champion is early-stopped on the validation days (its first N trees, `fewer_trees`);
any other champion is distilled into a small GBM student (`distilled_gbm`). Both rows are
measured on the champion's own test block and timed in ONNX Runtime (one thread).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from mlsd.compression.measure import Measured
    from mlsd.compression.run import Compression
    from mlsd.settings import Settings


def _verdict(result: Compression, source: Measured, variant: Measured) -> str:
    made = result.variants[0]
    size = variant.size_bytes / source.size_bytes
    speed = variant.rows_per_s[1024] / source.rows_per_s[1024]
    ap = variant.average_precision - source.average_precision
    if made.method == "fewer_trees":
        how = (
            f"The champion's first {made.params['trees']} of its {made.params['source_trees']} "
            "trees, early-stopped on the validation (delay) days"
        )
    else:
        how = (
            f"A student of {made.params['n_estimators']} trees of {made.params['num_leaves']} "
            f"leaves, fitted to the {result.source.flavor} champion's scores (no label)"
        )
    share = f"{size:.0%} of" if size <= 1 else f"{size:.0f}×"
    text = (
        f"{how}: {share} its size, {speed:.1f}× its rows/s at batch 1,024, AP {ap:+.3f} "
        "on the same test rows (timings of a short run on a shared machine: indicative)."
    )
    if size > 1 or speed < 1:
        text += (
            f" A {result.source.flavor} champion is already small and fast: a tree student "
            "is larger and slower than it, and pays only where it scores better; compression "
            "pays on a large teacher (`mlsd lab run compression`)."
        )
    return text


def demo_step(settings: Settings, console: Console, name: str = "fraud") -> dict[str, Any]:
    """Compress `name@champion` into one variant, register it (not promoted), print both rows.

    A few seconds; the full report is `mlsd compress` / `mlsd lab run compression`.
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
            champion = registry.resolve(f"models:/{name}@champion")
            method = "fewer_trees" if champion.flavor == "lightgbm" else "distilled_gbm"
            result = compress(
                registry,
                champion.uri,
                store,
                options=Options(methods=(method,)),
                budget=Budget.quick(),
            )
    finally:
        store.close()
    made = result.variants[0]
    variant_mv = result.registered[made.name]
    table = Table(
        title=f"compression ({method}): the champion and its variant, same test rows",
        caption="µs/row: one-row p50, ONNX Runtime 1 thread",
    )
    table.add_column("model", overflow="fold")
    for column in ("AP", "AUC", "CP@100", "µs/row", "rows/s @1024", "KB"):
        table.add_column(column, justify="right")
    labels = {
        f"source v{result.source.version}": f"v{result.source.version} champion",
        made.name: f"v{variant_mv.version} {made.name}",
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
            f"{m.size_bytes / 1024:,.1f}",
        )
    console.print(table)
    source, variant = rows
    console.print(
        _verdict(result, source, variant)
        + f" Registered as {variant_mv.uri} (lineage parent v{result.source.version}, "
        "not promoted)."
    )
    return {"variant": variant_mv.uri, "measured": [m.to_dict() for m in rows]}
