"""A small world of its own for the lab and the benchmark: simulate, build features, train a
LightGBM champion, register it. The same components as `mlsd demo`, in a scratch folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlsd.settings import Settings

QUICK_GRID: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "max_depth": 4,
    "num_leaves": 15,
    "min_child_samples": 50,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
}


def build_world(
    home: Path, *, customers: int, days: int, seed: int = 7, grid: dict[str, Any] | None = None
) -> Settings:
    """Settings on `home` whose registry holds `fraud@champion`, a LightGBM model trained by
    the handbook protocol (1 validation fold) on a simulated dataset of `customers`."""
    from mlsd.data.config import SimulatorConfig
    from mlsd.data.io import write_dataset
    from mlsd.data.simulator import simulate
    from mlsd.features.store import FeatureStore
    from mlsd.registry import Registry
    from mlsd.training.config import TrainConfig
    from mlsd.training.pipeline import register_result, train

    settings = Settings(home=home)
    config = SimulatorConfig(
        n_customers=customers, n_terminals=2 * customers, n_days=days, seed=seed
    )
    dataset = write_dataset(simulate(config), home / "dataset")
    store = FeatureStore.open(settings)
    try:
        store.apply()
        store.build(dataset)
        run = TrainConfig.make(
            dataset=str(dataset),
            n_folds=1,
            models=["lightgbm"],
            grids={"lightgbm": [grid or QUICK_GRID]},
            seed=seed,
        )
        result = train(run, store)
    finally:
        store.close()
    with Registry.open(settings) as registry:
        mv = register_result(registry, result, "fraud", tags={"source": "lab"})
        registry.set_alias("fraud", "champion", mv.version, reason="lab world", actor="mlsd-lab")
    return settings
