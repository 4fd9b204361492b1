"""A fast training step for `mlsd demo`: train, register and promote a champion."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsd.errors import GateRejectedError

if TYPE_CHECKING:
    from mlsd.registry import PromotionGate
    from mlsd.settings import Settings
    from mlsd.training.dataset import FeatureSource
    from mlsd.training.pipeline import TrainResult

QUICK_GRIDS: dict[str, list[dict[str, Any]]] = {
    "lightgbm": [
        {
            "n_estimators": 200,
            "learning_rate": 0.05,
            "max_depth": 3,
            "num_leaves": 8,
            "min_child_samples": 50,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
        }
    ],
    "logistic": [{"C": 1.0}],
}


def default_gate() -> PromotionGate:
    """The champion gate: mlsd has one, `mlsd.registry.gate.default_gate`."""
    from mlsd.registry.gate import default_gate as registry_gate

    return registry_gate()


def quick_train(
    dataset_dir: Path, source: FeatureSource, *, n_folds: int = 1, seed: int = 0
) -> TrainResult:
    """Both flavors with one parameter set each and `n_folds` validation folds."""
    from mlsd.training.config import TrainConfig
    from mlsd.training.pipeline import train

    config = TrainConfig.make(
        dataset=str(dataset_dir), n_folds=n_folds, grids=QUICK_GRIDS, seed=seed
    )
    return train(config, source)


def demo_step(
    dataset_dir: Path, settings: Settings | None = None, *, build: bool = True
) -> dict[str, Any]:
    """Build features, train both models, register the best and promote it to champion.

    `build=False` reuses the offline tables already built from `dataset_dir` (for
    instance by `mlsd.features.demo.demo_step`).

    Returns a summary: the version's URI, its test metrics, whether it was promoted (and
    if not, `refused`: the failed bounds; the champion is re-scored on the same test rows),
    the PR curve path and the wall time. A few seconds on the demo dataset.
    """
    from mlsd.features.store import FeatureStore
    from mlsd.registry import Registry
    from mlsd.settings import get_settings
    from mlsd.training.pipeline import promote_result, register_result
    from mlsd.training.report import write_report

    settings = settings or get_settings()
    started = time.perf_counter()
    store = FeatureStore.open(settings)
    try:
        store.apply()
        if build:
            store.build(Path(dataset_dir))
        result = quick_train(Path(dataset_dir), store)
    finally:
        store.close()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    paths = write_report(result, settings.path("reports"), f"train-{stamp}")
    registry = Registry.open(settings)
    try:
        mv = register_result(registry, result, "fraud", tags={"source": "demo"})
        refused = ""
        try:
            promote_result(
                registry,
                result,
                mv,
                gate=default_gate(),
                actor="mlsd-demo",
                reason="demo: best validation score",
            )
            promoted = True
        except GateRejectedError as exc:  # the reasons go into the summary
            promoted, refused = False, exc.message
    finally:
        registry.close()
    return {
        "uri": mv.uri,
        "flavor": mv.flavor,
        "metrics": {k: v for k, v in mv.metrics.items() if not k.startswith("valid_")},
        "promoted": promoted,
        "refused": refused,
        "pr_curve": str(paths["pr_curve"]),
        "seconds": time.perf_counter() - started,
    }
