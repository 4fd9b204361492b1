"""The source model's data, rebuilt from its lineage: training, validation, test, unlabelled.

A registered version records its dataset, training block and feature views; the same
point-in-time join training ran gives back its rows. The handbook block (7 training days,
7 delay days, 7 test days) is split as training split it, and:

- `train`: the training days (the rows the source was fitted on);
- `unlabelled`: the delay days, without their labels: the traffic a student is distilled on
  (the teacher scores it; no label of these days is read for that);
- `valid`: the delay days with their labels, for early stopping and the decision threshold
  of each variant. Labels of the delay days arrive while the test days are scored, so they
  are known when a model is compressed later; they never touch the test block;
- `test`: the handbook test block, known-compromised cards removed, as training tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlsd.data import schema
from mlsd.errors import ConflictError, ValidationError
from mlsd.training.dataset import FeatureSource, matrix, training_set_hash
from mlsd.training.pipeline import load_frame
from mlsd.training.protocol import DAY, split_frame, with_day
from mlsd.training.reproduce import recorded_config

if TYPE_CHECKING:
    from mlsd.registry import ModelVersion
    from mlsd.training.config import TrainConfig


@dataclass(frozen=True)
class Blocks:
    """The source's rows by role, with their feature matrices in model order."""

    features: list[str]
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    config: TrainConfig

    def X(self, part: str) -> NDArray[np.float32]:  # noqa: N802 - X, y as scikit-learn names them
        """The float32 feature matrix of `train`, `valid` or `test` (`unlabelled` = `valid`)."""
        frame = self.valid if part == "unlabelled" else getattr(self, part)
        return matrix(frame, self.features)

    def y(self, part: str) -> NDArray[np.int32]:
        """The labels of `train`, `valid` or `test` (none for `unlabelled`)."""
        if part == "unlabelled":
            raise ValidationError("unlabelled traffic has no labels", field="part")
        frame: pd.DataFrame = getattr(self, part)
        return frame[schema.TX_FRAUD].to_numpy(dtype=np.int32)


def _trained(mv: ModelVersion) -> ModelVersion:
    """`mv`, or for a compressed variant the lineage of the model it was compressed from."""
    source = mv.lineage.config.get("source_config")
    if "train" in mv.lineage.config or not isinstance(source, dict):
        return mv
    return mv.model_copy(update={"lineage": mv.lineage.model_copy(update={"config": source})})


def load_blocks(mv: ModelVersion, source: FeatureSource) -> Blocks:
    """The blocks of `mv`'s recorded training run, from `source` (the feature store).

    ValidationError when the version has no recorded training configuration (a version
    registered by hand), or its blocks hold no fraud to measure with; ConflictError when the
    feature store serves other view versions or its rows of the training days are not the
    ones the source was fitted on (its training set hash), so every figure would be wrong.
    """
    config = recorded_config(_trained(mv))
    if config.train_start is None:
        raise ValidationError(f"{mv.uri} has no recorded training start", field="lineage")
    recorded = dict(mv.lineage.feature_views)
    if recorded and dict(source.view_versions()) != recorded:
        raise ConflictError(
            f"{mv.uri} was trained on feature views {recorded}; the feature store serves "
            f"{dict(source.view_versions())}",
            field="feature_views",
        )
    features = list(mv.signature.feature_names)
    split = config.split_at(config.train_start)
    frame = load_frame(config, source, split.train_start, split.test_end)
    train, test = split_frame(frame, split)
    expected = mv.lineage.training_set_hash
    if expected and training_set_hash(train, config.features) != expected:
        raise ConflictError(
            f"the training rows of {mv.uri} rebuilt from the feature store differ from the ones "
            f"it was fitted on (training set hash): rebuild the offline tables from its dataset "
            f"(mlsd features build {config.dataset})",
            field="training_set_hash",
        )
    days = with_day(frame)[DAY]
    delay_end = split.train_end + timedelta(days=split.delay_days)
    valid = frame[(days >= split.train_end) & (days < delay_end)]
    for name, part in (("training", train), ("delay (validation)", valid), ("test", test)):
        labels = part[schema.TX_FRAUD].to_numpy()
        if len(part) == 0 or labels.min() == labels.max():
            raise ValidationError(
                f"{mv.uri}: the {name} days hold {len(part)} rows and "
                f"{int(labels.sum()) if len(part) else 0} frauds: both classes are needed",
                field="dataset",
            )
    return Blocks(
        features,
        train.reset_index(drop=True),
        valid.reset_index(drop=True),
        test.reset_index(drop=True),
        config,
    )
