"""Model selection by prequential validation (handbook section 5.2-5.3).

Each candidate (a flavor and its parameters) is trained and scored on every fold and
its metrics are averaged over the folds. The winner is chosen by a rule over those
means (`choose`): the best mean of one metric, or `mean_rank` -- the best mean rank
over AUC ROC, AP and CP@k, so that no one metric decides alone. The folds end before
the test block's training days begin, so the test days are never used to choose.
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

MEAN_RANK = "mean_rank"
"""The rule ranking candidates on each of AUC ROC, AP and CP@k and taking the best mean rank."""

_SLOW = {"learning_rate": 0.01, "subsample": 0.7, "colsample_bytree": 0.7}
DEFAULT_GRIDS: dict[str, list[dict[str, Any]]] = {
    # shallow, regularised, slow boosting: 7 days hold only ~500 frauds. The six best by
    # validation mean rank of 22 tried on the handbook configuration (docs/training.md).
    "lightgbm": [
        {"n_estimators": 1200, "max_depth": 4, "num_leaves": 15, "min_child_samples": 200} | _SLOW,
        {"n_estimators": 1200, "max_depth": 3, "num_leaves": 8, "min_child_samples": 200} | _SLOW,
        {"n_estimators": 2000, "max_depth": 3, "num_leaves": 8, "min_child_samples": 200} | _SLOW,
        {"n_estimators": 1200, "max_depth": 4, "num_leaves": 15, "min_child_samples": 400} | _SLOW,
        {"n_estimators": 1200, "max_depth": 4, "num_leaves": 15, "min_child_samples": 200}
        | _SLOW
        | {"colsample_bytree": 0.5},
        {
            "n_estimators": 600,
            "learning_rate": 0.02,
            "max_depth": 3,
            "num_leaves": 8,
            "min_child_samples": 100,
            "subsample": 0.7,
            "colsample_bytree": 0.7,
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
    """One set of parameters, its validation metrics (per fold and mean) and scores.

    `scores` holds the candidate's scores of each fold's test rows, in the fold's row order:
    the decision threshold is chosen on them (`mlsd.training.threshold`).
    """

    params: dict[str, Any]
    folds: list[dict[str, float]] = field(default_factory=list)
    scores: list[NDArray[np.float64]] = field(default_factory=list)

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
    top_k: int = 100

    @property
    def best(self) -> Candidate:
        """The candidate `choose` picks by the selection rule `metric`."""
        index = choose([c.metrics for c in self.candidates], self.metric, top_k=self.top_k)
        return self.candidates[index]


def rank_metrics(top_k: int = 100) -> tuple[str, ...]:
    """The metrics `mean_rank` ranks on."""
    return ("auc_roc", "average_precision", f"card_precision_at_{top_k}")


def mean_ranks(metrics: Sequence[Mapping[str, float]], keys: Sequence[str]) -> list[float]:
    """Each entry's mean over `keys` of its rank (1 = highest value, ties share the mean rank)."""
    total = np.zeros(len(metrics), dtype=np.float64)
    for key in keys:
        values = np.array([m[key] for m in metrics], dtype=np.float64)
        above = (values[None, :] > values[:, None]).sum(axis=1)
        equal = (values[None, :] == values[:, None]).sum(axis=1)
        total += 1.0 + above + (equal - 1) / 2.0
    return [float(v) for v in total / len(keys)]


def choose(metrics: Sequence[Mapping[str, float]], rule: str, *, top_k: int = 100) -> int:
    """Index of the winner among mean validation metrics by `rule`.

    `rule` is a metric name (highest mean wins, first on ties) or `MEAN_RANK` (lowest
    mean rank over `rank_metrics(top_k)` wins; ties go to the higher AP, then the first).
    """
    if not metrics:
        raise ValidationError("there is no candidate to choose from", field="grid")
    order = range(len(metrics))
    if rule != MEAN_RANK:
        if rule not in metrics[0]:
            raise ValidationError(f"unknown selection metric {rule!r}", field="selection_metric")
        return max(order, key=lambda i: metrics[i][rule])
    ranks = mean_ranks(metrics, rank_metrics(top_k))
    return min(order, key=lambda i: (ranks[i], -metrics[i]["average_precision"]))


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
    """Score every parameter set of `grid` on every fold; `choose` by `metric` picks the best."""
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
            candidate.scores.append(scores)
            if progress is not None:
                progress(f"{flavor} {params} fold {fold.split.train_start}")
        candidates.append(candidate)
    choose([c.metrics for c in candidates], metric, top_k=top_k)  # an unknown rule fails here
    return Selection(flavor=flavor, metric=metric, candidates=candidates, top_k=top_k)
