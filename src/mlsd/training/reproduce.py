"""`reproduce`: retrain a registered version from its lineage and compare predictions.

The recorded training configuration (dataset, block, flavor, parameters, seed, thread
count) is replayed through the same code path as `train`; the retrained model and the
stored artifact then score the same test rows. LightGBM is trained with
`deterministic=True` and a fixed thread count, so a faithful replay matches exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlsd.errors import ValidationError
from mlsd.registry.formats import ONNX_ARTIFACT
from mlsd.training.config import TrainConfig
from mlsd.training.dataset import FeatureSource, dataset_hash, matrix, training_set_hash
from mlsd.training.metrics import evaluate
from mlsd.training.models import load_scorer, onnx_scorer
from mlsd.training.pipeline import load_frame
from mlsd.training.selection import fit_and_score, make_folds

if TYPE_CHECKING:
    from mlsd.registry import ModelVersion, Registry
    from mlsd.settings import Settings


@dataclass(frozen=True)
class ReproduceReport:
    """Whether a retrained model predicts what the registered one does."""

    uri: str
    flavor: str
    matches: bool
    max_abs_diff: float
    onnx_max_abs_diff: float
    tolerance: float
    n_rows: int
    training_set_hash_matches: bool
    dataset_hash_matches: bool
    feature_views_match: bool
    recorded_metrics: dict[str, float] = field(default_factory=dict)
    reproduced_metrics: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data."""
        return asdict(self)


def recorded_config(mv: ModelVersion) -> TrainConfig:
    """The training configuration stored in a version's lineage."""
    data = mv.lineage.config.get("train")
    if not isinstance(data, dict):
        raise ValidationError(
            f"{mv.uri} has no recorded training configuration to replay", field="lineage"
        )
    return TrainConfig.make(**data)


def reproduce(
    registry: Registry,
    uri: str,
    *,
    source: FeatureSource | None = None,
    settings: Settings | None = None,
    build: bool = True,
    tolerance: float = 1e-9,
) -> ReproduceReport:
    """Retrain `uri` from its lineage; compare its test predictions with the stored model's.

    Without `source`, the feature store of `settings` is opened and (if `build`) its
    offline tables are rebuilt from the recorded dataset before the replay.
    """
    mv = registry.resolve(uri)
    config = recorded_config(mv)
    if source is not None:
        return _replay(registry, mv, config, source, tolerance)
    from mlsd.features.store import FeatureStore

    store = FeatureStore.open(settings)
    try:
        if build:
            store.build(Path(config.dataset))
        return _replay(registry, mv, config, store, tolerance)
    finally:
        store.close()


def _replay(
    registry: Registry,
    mv: ModelVersion,
    config: TrainConfig,
    source: FeatureSource,
    tolerance: float,
) -> ReproduceReport:
    problems: list[str] = []
    data_ok = dataset_hash(Path(config.dataset)) == mv.lineage.dataset_hash
    if not data_ok:
        problems.append(f"the dataset at {config.dataset} changed since training")
    views_ok = dict(source.view_versions()) == dict(mv.lineage.feature_views)
    if not views_ok:
        problems.append("the feature views served now differ from the recorded ones")

    if config.train_start is None:
        raise ValidationError(f"{mv.uri} has no recorded training start", field="lineage")
    split = config.split_at(config.train_start)
    frame = load_frame(config, source, split.train_start, split.test_end)
    (fold,) = make_folds(frame, [split])
    hash_ok = training_set_hash(fold.train, config.features) == mv.lineage.training_set_hash
    if not hash_ok:
        problems.append("the training set differs from the recorded one (hash mismatch)")

    flavor = config.models[0]
    params = config.grids[flavor][0]
    model, _ = fit_and_score(
        flavor, params, fold, config.features, seed=config.seed, num_threads=config.num_threads
    )
    artifacts = {name: registry.load_artifact(mv, name) for name in mv.artifacts}
    X = matrix(fold.test, config.features)
    # like with like: both models go through their stored (native, non-ONNX) form
    scores = load_scorer(flavor, model.artifacts(list(config.features)))(X)
    stored = load_scorer(mv.flavor, artifacts)(X)
    diff = float(np.max(np.abs(stored - scores))) if len(scores) else 0.0
    onnx_diff = float("nan")
    if ONNX_ARTIFACT in artifacts:
        onnx_diff = float(np.max(np.abs(onnx_scorer(artifacts[ONNX_ARTIFACT])(X) - stored)))
    if diff > tolerance:
        problems.append(f"predictions differ by up to {diff:.3g} (tolerance {tolerance:g})")
    recorded = {k: v for k, v in mv.metrics.items() if not k.startswith("valid_")}
    return ReproduceReport(
        uri=mv.uri,
        flavor=mv.flavor,
        matches=diff <= tolerance and hash_ok,
        max_abs_diff=diff,
        onnx_max_abs_diff=onnx_diff,
        tolerance=tolerance,
        n_rows=len(scores),
        training_set_hash_matches=hash_ok,
        dataset_hash_matches=data_ok,
        feature_views_match=views_ok,
        recorded_metrics=recorded,
        reproduced_metrics=evaluate(fold.test, scores, top_k=config.top_k),
        problems=problems,
    )
