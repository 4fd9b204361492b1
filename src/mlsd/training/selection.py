"""Model selection by prequential validation (handbook section 5.2-5.3).

Each candidate (a flavor and its parameters) is trained and scored on every fold;
the candidate with the best mean of the selection metric over the folds wins. The
folds end before the test block's training days begin, so the test days are never
used to choose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlsd.data import schema
from mlsd.errors import ValidationError
from mlsd.training.dataset import matrix
from mlsd.training.metrics import evaluate, mean_metrics
from mlsd.training.models import FraudModel, make_model
from mlsd.training.protocol import Split, split_frame

Progress = Callable[[str], None]

_REGULARISED = {"min_child_samples": 100, "subsample": 0.8, "colsample_bytree": 0.8}
DEFAULT_GRIDS: dict[str, list[dict[str, Any]]] = {
    # shallow, regularised boosting: 7 days hold only ~500 frauds
    "lightgbm": [
        {"n_estimators": 300, "learning_rate": 0.05, "max_depth": 3, "num_leaves": 8}
        | _REGULARISED,
        {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 15, "reg_lambda": 5.0}
        | _REGULARISED,
        {
            "n_estimators": 600,
            "learning_rate": 0.02,
            "max_depth": 3,
            "num_leaves": 8,
            "min_child_samples": 200,
            "subsample": 0.7,
            "colsample_bytree": 0.7,
        },
        {
            "n_estimators": 200,
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_child_samples": 50,
            "subsample": 0.8,
            "colsample_bytree": 0.6,
        },
    ],
    "logistic": [{"C": 0.1}, {"C": 1.0}, {"C": 10.0}],
}


@dataclass(frozen=True)
class Fold:
    """One train/test block, its frames already split."""

    split: Split
    train: pd.DataFrame
    test: pd.DataFrame


@dataclass
class Candidate:
    """One set of parameters and its validation metrics (per fold and mean)."""

    params: dict[str, Any]
    folds: list[dict[str, float]] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, float]:
        """Mean (and `_std`) of each metric over the folds."""
        return mean_metrics(self.folds)


@dataclass
class Selection:
    """The outcome of a grid search for one flavor."""

    flavor: str
    metric: str
    candidates: list[Candidate]

    @property
    def best(self) -> Candidate:
        """The candidate with the highest mean selection metric (first on ties)."""
        return max(self.candidates, key=lambda c: c.metrics[self.metric])


def make_folds(frame: pd.DataFrame, splits: Sequence[Split]) -> list[Fold]:
    """Split `frame` once per block; refuse a block without both classes."""
    folds = []
    for split in splits:
        train, test = split_frame(frame, split)
        for part, rows in (("training", train), ("test", test)):
            if rows[schema.TX_FRAUD].nunique() < 2:
                raise ValidationError(
                    f"the {part} days of the block starting {split.train_start} need both "
                    "frauds and genuine transactions (is the dataset long enough?)",
                    field="train_start",
                )
        folds.append(Fold(split, train, test))
    return folds


def fit_and_score(
    flavor: str,
    params: Mapping[str, Any],
    fold: Fold,
    features: Sequence[str],
    *,
    seed: int,
    num_threads: int,
) -> tuple[FraudModel, NDArray[np.float64]]:
    """Train a model on the fold's training days and score its test days."""
    model = make_model(flavor, params, seed=seed, num_threads=num_threads)
    model.fit(matrix(fold.train, features), fold.train[schema.TX_FRAUD].to_numpy())
    return model, model.predict(matrix(fold.test, features))


def select(
    flavor: str,
    grid: Sequence[Mapping[str, Any]],
    folds: Sequence[Fold],
    features: Sequence[str],
    *,
    metric: str = "average_precision",
    top_k: int = 100,
    seed: int = 0,
    num_threads: int = 1,
    progress: Progress | None = None,
) -> Selection:
    """Score every parameter set of `grid` on every fold; the best mean `metric` wins."""
    if not grid:
        raise ValidationError(f"the grid of {flavor} is empty", field="grid")
    if not folds:
        raise ValidationError("prequential validation needs at least one fold", field="n_folds")
    candidates = []
    for params in grid:
        candidate = Candidate(params=dict(params))
        for fold in folds:
            _, scores = fit_and_score(
                flavor, params, fold, features, seed=seed, num_threads=num_threads
            )
            candidate.folds.append(evaluate(fold.test, scores, top_k=top_k))
            if progress is not None:
                progress(f"{flavor} {params} fold {fold.split.train_start}")
        candidates.append(candidate)
    if metric not in candidates[0].folds[0]:
        raise ValidationError(f"unknown selection metric {metric!r}", field="selection_metric")
    return Selection(flavor=flavor, metric=metric, candidates=candidates)
