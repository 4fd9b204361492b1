"""`train`: the handbook protocol end to end, and `register_result` into the registry.

1. Read the dataset's transactions for the validation folds and the test block.
2. Join their features point-in-time from the feature store.
3. For each flavor, choose parameters by prequential validation (folds before the test
   block), then train on the test block's training days and score its test days.
4. Each flavor's decision threshold is chosen by the configured policy on its best
   candidate's validation scores (`threshold`), never on the test days.
5. The flavor whose best candidate wins the same rule is the primary result; `register_result`
   stores it with its lineage, signature, metrics and threshold.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlsd.errors import NotFoundError, ValidationError
from mlsd.training.config import TrainConfig
from mlsd.training.dataset import (
    FeatureSource,
    dataset_hash,
    dataset_period,
    load_transactions,
    matrix,
    training_frame,
    training_set_hash,
)
from mlsd.training.metrics import evaluate
from mlsd.training.models import FraudModel
from mlsd.training.protocol import Split, day_start, prequential_splits, validation_split
from mlsd.training.selection import Fold, Selection, choose, fit_and_score, make_folds, select
from mlsd.training.threshold import ThresholdChoice, choose_threshold

if TYPE_CHECKING:
    from mlsd.registry import ModelVersion, PromotionGate, Registry
    from mlsd.registry.gate import GateDecision, Rescored
    from mlsd.registry.profile import ReferenceProfile

Progress = Callable[[str], None]


@dataclass
class ModelResult:
    """One trained flavor: chosen parameters, validation, threshold, test metrics and scores."""

    flavor: str
    params: dict[str, Any]
    metrics: dict[str, float]
    selection: Selection
    model: FraudModel
    scores: NDArray[np.float64]
    fit_seconds: float
    threshold: ThresholdChoice


@dataclass
class TrainResult:
    """The outcome of `train`: every flavor's result and what lineage needs."""

    config: TrainConfig
    split: Split
    validation_splits: list[Split]
    models: dict[str, ModelResult]
    primary: str
    training_set_hash: str
    feature_views: dict[str, str]
    dataset_hash: str
    test: pd.DataFrame
    """The test rows (after removing known cards) with their features, in score order."""
    n_train: int
    timings: dict[str, float] = field(default_factory=dict)
    train_features: NDArray[np.float32] | None = None
    """The final training rows' features (model order): the registered reference profile."""


def _skip(_: str) -> None:
    return None


def validation_folds(config: TrainConfig, split: Split, first_day: date) -> list[Split]:
    """The prequential folds before `split` that fit in the dataset (at most n_folds)."""
    folds = prequential_splits(validation_split(split), config.n_folds)
    kept = [f for f in folds if f.train_start >= first_day]
    if not kept:
        raise ValidationError(
            f"no validation fold fits before {split.train_start}: the dataset starts "
            f"{first_day}; pick a later --train-start",
            field="train_start",
        )
    return kept


def load_frame(config: TrainConfig, source: FeatureSource, start: date, end: date) -> pd.DataFrame:
    """Transactions of [start, end) with their point-in-time features."""
    transactions = load_transactions(Path(config.dataset), start, end)
    return training_frame(source, transactions, config.features)


def train(
    config: TrainConfig, source: FeatureSource, progress: Progress | None = None
) -> TrainResult:
    """Select, train and test every flavor of `config` on the handbook protocol."""
    step = progress or _skip
    clock = time.perf_counter()
    dataset_dir = Path(config.dataset)
    first_day, end_day = dataset_period(dataset_dir)
    split = config.test_split(first_day, end_day)
    valid_splits = validation_folds(config, split, first_day)
    start = min(s.train_start for s in valid_splits)
    frame = load_frame(config, source, start, split.test_end)
    step(f"features: {len(frame):,} rows")
    timings = {"features": time.perf_counter() - clock}

    folds = make_folds(frame, valid_splits)
    (final,) = make_folds(frame, [split])
    results: dict[str, ModelResult] = {}
    for flavor in config.models:
        clock = time.perf_counter()
        grid = config.grids.get(flavor)
        if not grid:
            raise ValidationError(f"no parameter grid for {flavor}", field="grids")
        selection = select(
            flavor,
            grid,
            folds,
            config.features,
            metric=config.metric_name,
            top_k=config.top_k,
            seed=config.seed,
            num_threads=config.num_threads,
            progress=step,
        )
        timings[f"{flavor}_selection"] = time.perf_counter() - clock
        threshold = validation_threshold(config, selection, folds)
        results[flavor] = fit_final(config, flavor, selection, final, threshold)
        step(f"{flavor}: tested")
    bests = [results[f].selection.best.metrics for f in config.models]
    primary = config.models[choose(bests, config.metric_name, top_k=config.top_k)]
    return TrainResult(
        config=config,
        split=split,
        validation_splits=valid_splits,
        models=results,
        primary=primary,
        training_set_hash=training_set_hash(final.train, config.features),
        feature_views=dict(source.view_versions()),
        dataset_hash=dataset_hash(dataset_dir),
        test=final.test.reset_index(drop=True),
        n_train=len(final.train),
        timings=timings,
        train_features=matrix(final.train, config.features),
    )


def validation_threshold(
    config: TrainConfig, selection: Selection, folds: list[Fold]
) -> ThresholdChoice:
    """The decision threshold `config`'s policy picks on the best candidate's validation scores.

    Only the validation folds' test days are used (they end before the test block's training
    days begin), so the test metrics stay an honest estimate at the chosen threshold too.
    """
    best = selection.best
    frame = pd.concat([fold.test for fold in folds], ignore_index=True)
    return choose_threshold(
        config.threshold_policy,
        frame,
        np.concatenate(best.scores),
        alert_budget_k=config.alert_budget,
        review_cost=config.review_cost,
    )


def fit_final(
    config: TrainConfig,
    flavor: str,
    selection: Selection,
    fold: Fold,
    threshold: ThresholdChoice,
) -> ModelResult:
    """Train `flavor` with the selected parameters on the block's training days; test it."""
    params = selection.best.params
    clock = time.perf_counter()
    model, scores = fit_and_score(
        flavor, params, fold, config.features, seed=config.seed, num_threads=config.num_threads
    )
    return ModelResult(
        flavor=flavor,
        params=dict(params),
        metrics=evaluate(fold.test, scores, top_k=config.top_k),
        selection=selection,
        model=model,
        scores=scores,
        fit_seconds=time.perf_counter() - clock,
        threshold=threshold,
    )


def code_commit() -> str:
    """The git commit of the source tree, or "unknown" outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def register_result(
    registry: Registry,
    result: TrainResult,
    name: str = "fraud",
    *,
    flavor: str | None = None,
    tags: dict[str, str] | None = None,
    description: str = "",
) -> ModelVersion:
    """Register one flavor of `result` (the primary by default) with its full lineage."""
    from mlsd.registry import DecisionThreshold, Lineage, Signature
    from mlsd.registry.profile import PROFILE_ARTIFACT, profile_bytes

    chosen = flavor or result.primary
    if chosen not in result.models:
        raise ValidationError(f"{chosen} was not trained in this run", field="flavor")
    model = result.models[chosen]
    config = result.config
    try:
        parent: int | None = registry.resolve(f"models:/{name}@champion").version
    except NotFoundError:
        parent = None
    split = result.split
    lineage = Lineage(
        training_set_hash=result.training_set_hash,
        feature_views=result.feature_views,
        code_commit=code_commit(),
        dataset=str(Path(config.dataset).resolve()),
        dataset_hash=result.dataset_hash,
        train_period=(day_start(split.train_start), day_start(split.train_end)),
        test_period=(day_start(split.test_start), day_start(split.test_end)),
        parent_version=parent,
        config={
            "train": config.replay(chosen, model.params, split.train_start).model_dump(mode="json"),
            "flavor": chosen,
            "params": model.params,
            "selected_from": [c.params for c in model.selection.candidates],
        },
    )
    metrics = dict(model.metrics)
    for key, value in model.selection.best.metrics.items():
        metrics[f"valid_{key}"] = value
    signature = Signature(
        feature_names=list(config.features),
        dtypes=["float32"] * len(config.features),
        output="fraud_probability",
    )
    artifacts = model.model.artifacts(list(config.features))
    if result.train_features is not None:
        artifacts[PROFILE_ARTIFACT] = profile_bytes(reference_profile(result, chosen))
    return registry.register(
        name,
        artifacts,
        flavor=chosen,
        signature=signature,
        lineage=lineage,
        params={**model.params, "seed": config.seed, "num_threads": config.num_threads},
        metrics=metrics,
        tags=tags,
        description=description or f"{chosen} trained {split.train_start}..{split.train_end}",
        threshold=DecisionThreshold(
            value=model.threshold.value,
            policy=model.threshold.policy,
            parameter=model.threshold.parameter,
            validation=model.threshold.validation,
        ),
    )


def reference_profile(result: TrainResult, flavor: str) -> ReferenceProfile:
    """The profile registered with `flavor`: features of the training rows, scores of the
    test rows, and their calibration against the test rows' labels (for CBPE).

    Scores come from the test block, not the training rows: a model scores the rows it
    was fitted on more confidently than new ones, and serving sees new ones.
    """
    from mlsd.data import schema
    from mlsd.registry.profile import build_profile

    if result.train_features is None:
        raise ValidationError("this result kept no training features", field="train_features")
    split = result.split
    return build_profile(
        result.train_features,
        list(result.config.features),
        scores=result.models[flavor].scores,
        labels=result.test[schema.TX_FRAUD].to_numpy(),
        source=f"features: training rows {split.train_start}..{split.train_end}; "
        f"scores: test rows {split.test_start}..{split.test_end}",
    )


def rescore_champion(registry: Registry, result: TrainResult, champion: ModelVersion) -> Rescored:
    """The champion's test metrics on `result`'s test rows (its ONNX model, as served).

    Only possible when the champion was trained on the feature view versions the rows
    were computed with; otherwise the returned note says why not.
    """
    from mlsd.registry.formats import ONNX_ARTIFACT as ONNX_FILE
    from mlsd.registry.gate import Rescored
    from mlsd.training.models import onnx_scorer

    views = dict(champion.lineage.feature_views)
    if views and views != result.feature_views:
        return Rescored(
            note=f"champion v{champion.version} was trained on feature views {views}, the "
            f"candidate's test rows hold {result.feature_views}"
        )
    features = list(champion.signature.feature_names)
    missing = [f for f in features if f not in result.test.columns]
    if missing:
        return Rescored(note=f"the candidate's test rows lack the champion's features {missing}")
    if ONNX_FILE not in champion.artifacts:
        return Rescored(note=f"champion v{champion.version} has no {ONNX_FILE}")
    score = onnx_scorer(registry.load_artifact(champion, ONNX_FILE))
    scores = score(matrix(result.test, features))
    return Rescored(metrics=evaluate(result.test, scores, top_k=result.config.top_k))


def promote_result(
    registry: Registry,
    result: TrainResult,
    mv: ModelVersion,
    *,
    gate: PromotionGate,
    actor: str,
    reason: str,
    alias: str = "champion",
) -> GateDecision:
    """Promote the version registered from `result` through `gate`, on the same test data.

    When the alias holder was tested on other rows (another dataset or test period), it is
    re-scored on `result`'s test rows first, so the regression bounds compare like with
    like. A refusal raises GateRejectedError naming every failed bound.
    """
    from mlsd.registry.gate import same_test_data

    rescored = None
    current = registry.aliases(mv.name).get(alias)
    if current is not None and current != mv.version:
        holder = registry.get(mv.name, current)
        if not same_test_data(mv, holder):
            rescored = rescore_champion(registry, result, holder)
    return registry.promote(
        mv.name, mv.version, gate=gate, actor=actor, reason=reason, alias=alias, rescored=rescored
    )
