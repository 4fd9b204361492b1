"""The training report: a metrics table beside the handbook's, a PR curve, a JSON summary."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsd.data import schema

if TYPE_CHECKING:
    from rich.table import Table

    from mlsd.training.pipeline import TrainResult

HANDBOOK_BASELINES: dict[str, tuple[float, float, float]] = {
    "handbook logistic regression": (0.871, 0.606, 0.291),
    "handbook random forest": (0.867, 0.658, 0.287),
    "handbook XGBoost": (0.862, 0.639, 0.273),
}
"""AUC ROC / AP / CP@100 of the handbook's baselines (train 2018-07-25..31, test 08-08..14)."""


_SHORT = {
    "n_estimators": "trees",
    "learning_rate": "lr",
    "num_leaves": "leaves",
    "max_depth": "depth",
    "min_child_samples": "min_child",
    "colsample_bytree": "colsample",
    "reg_lambda": "l2",
}


def short_params(params: dict[str, Any]) -> str:
    """Parameters as a compact `name=value` list for narrow terminals."""
    return " ".join(f"{_SHORT.get(k, k)}={v}" for k, v in sorted(params.items()))


def summary(result: TrainResult) -> dict[str, Any]:
    """The run as JSON-able data: periods, per-flavor metrics, parameters and timings."""
    return {
        "split": result.split.to_dict(),
        "validation_folds": [s.to_dict() for s in result.validation_splits],
        "primary": result.primary,
        "n_train": result.n_train,
        "n_test": len(result.test),
        "test_frauds": int(result.test[schema.TX_FRAUD].sum()),
        "training_set_hash": result.training_set_hash,
        "feature_views": result.feature_views,
        "dataset_hash": result.dataset_hash,
        "models": {
            flavor: {
                "params": m.params,
                "test": m.metrics,
                "validation": m.selection.best.metrics,
                "threshold": asdict(m.threshold),
                "candidates": [
                    {"params": c.params, "validation": c.metrics} for c in m.selection.candidates
                ],
                "fit_seconds": m.fit_seconds,
            }
            for flavor, m in result.models.items()
        },
        "timings": result.timings,
    }


def metrics_table(result: TrainResult) -> Table:
    """Test metrics of each trained flavor, then the handbook's reference rows."""
    from rich.table import Table

    k = result.config.top_k
    split = result.split
    table = Table(
        title=f"test {split.test_start}..{split.test_end} (end excl.), "
        f"trained {split.train_start}..{split.train_end}"
    )
    columns = ("model", "AUC ROC", "AP", f"CP@{k}", "valid AP (mean ± sd)", "threshold", "params")
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "params") else "right")
    for flavor, m in result.models.items():
        valid = m.selection.best.metrics
        star = " *" if flavor == result.primary else ""
        table.add_row(
            f"{flavor}{star}",
            f"{m.metrics['auc_roc']:.3f}",
            f"{m.metrics['average_precision']:.3f}",
            f"{m.metrics[f'card_precision_at_{k}']:.3f}",
            f"{valid['average_precision']:.3f} ± {valid['average_precision_std']:.3f}",
            f"{m.threshold.value:.4g}",
            short_params(m.params),
        )
    for name, (auc, ap, cp) in HANDBOOK_BASELINES.items():
        table.add_row(f"[dim]{name}[/]", f"{auc:.3f}", f"{ap:.3f}", f"{cp:.3f}", "", "", "")
    return table


def write_pr_curve(result: TrainResult, path: Path) -> Path:
    """Precision-recall curve of every flavor on the test days, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    labels = result.test[schema.TX_FRAUD].to_numpy()
    figure, axes = plt.subplots(figsize=(6, 4.5), dpi=110)
    for flavor, m in result.models.items():
        precision, recall, _ = precision_recall_curve(labels, m.scores)
        ap = m.metrics["average_precision"]
        axes.step(recall, precision, where="post", label=f"{flavor} (AP {ap:.3f})")
    axes.axhline(labels.mean(), color="grey", linestyle=":", label="fraud rate")
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    split = result.split
    axes.set_title(f"Precision-recall, test {split.test_start}..{split.test_end} (excl.)")
    axes.legend(loc="lower left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def write_report(result: TrainResult, folder: Path, stem: str) -> dict[str, Path]:
    """`<stem>-pr.png` and `<stem>.json` in `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    png = write_pr_curve(result, folder / f"{stem}-pr.png")
    data = folder / f"{stem}.json"
    data.write_text(json.dumps(summary(result), indent=2, default=str))
    return {"pr_curve": png, "summary": data}
