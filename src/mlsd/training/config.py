"""The training configuration: what `train` does, stored in lineage so it can be replayed."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from mlsd.errors import ValidationError
from mlsd.registry.formats import FLAVORS, Flavor
from mlsd.training.dataset import handbook_features
from mlsd.training.protocol import Split
from mlsd.training.selection import DEFAULT_GRIDS
from mlsd.training.threshold import DEFAULT_ALERT_BUDGET, DEFAULT_REVIEW_COST, ThresholdPolicy

HANDBOOK_TRAIN_START = date(2018, 7, 25)
"""The handbook's training start (train 07-25..31, delay 08-01..07, test 08-08..14)."""


class TrainConfig(BaseModel):
    """Everything one training run depends on; its JSON form goes into the lineage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    train_start: date | None = None
    train_days: int = Field(default=7, ge=1)
    delay_days: int = Field(default=7, ge=0)
    test_days: int = Field(default=7, ge=1)
    n_folds: int = Field(default=4, ge=1)
    models: list[Flavor] = Field(default_factory=lambda: list(FLAVORS), min_length=1)
    grids: dict[str, list[dict[str, Any]]] = Field(
        default_factory=lambda: copy.deepcopy(DEFAULT_GRIDS)
    )
    selection_metric: Literal["auc_roc", "average_precision", "card_precision", "mean_rank"] = (
        "mean_rank"
    )
    top_k: int = Field(default=100, ge=1)
    threshold_policy: ThresholdPolicy = "alert_budget"
    """How the decision threshold is chosen on the validation folds (`training.threshold`)."""
    alert_budget: int = Field(default=DEFAULT_ALERT_BUDGET, ge=1)
    """`alert_budget`: cards investigators review per day, on average."""
    review_cost: float = Field(default=DEFAULT_REVIEW_COST, ge=0.0, allow_inf_nan=False)
    """`expected_cost`: euros one alert's review costs."""
    seed: int = 0
    num_threads: int = Field(default=1, ge=1)
    features: list[str] = Field(default_factory=handbook_features, min_length=1)

    @classmethod
    def make(cls, **values: Any) -> TrainConfig:
        """Build a config, turning pydantic's errors into a `ValidationError` with the field."""
        try:
            return cls(**values)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "config"
            raise ValidationError(f"{where}: {first['msg']}", field=where) from exc

    @property
    def metric_name(self) -> str:
        """The selection rule for `selection.choose` (Card Precision carries its k)."""
        if self.selection_metric == "card_precision":
            return f"card_precision_at_{self.top_k}"
        return self.selection_metric

    def split_at(self, train_start: date) -> Split:
        """The train / delay / test block starting `train_start`."""
        return Split(train_start, self.train_days, self.delay_days, self.test_days)

    def test_split(self, first_day: date, end_day: date) -> Split:
        """The test block inside a dataset covering [first_day, end_day).

        The configured start if given (it must fit), else the handbook's start when the
        dataset covers it, else the latest block that fits.
        """
        span = timedelta(days=self.train_days + self.delay_days + self.test_days)
        if self.train_start is not None:
            split = self.split_at(self.train_start)
            if split.train_start < first_day or split.test_end > end_day:
                raise ValidationError(
                    f"the block {split.train_start}..{split.test_end} (end exclusive) does not "
                    f"fit in the dataset's days {first_day}..{end_day}",
                    field="train_start",
                )
            return split
        handbook = self.split_at(HANDBOOK_TRAIN_START)
        if handbook.train_start >= first_day and handbook.test_end <= end_day:
            return handbook
        start = end_day - span
        if start < first_day:
            raise ValidationError(
                f"the dataset ({first_day}..{end_day}) is shorter than one "
                f"train/delay/test block of {span.days} days",
                field="dataset",
            )
        return self.split_at(start)

    def replay(self, flavor: str, params: dict[str, Any], train_start: date) -> TrainConfig:
        """This config narrowed to one block, flavor and parameter set (what `reproduce` runs)."""
        update = {"models": [flavor], "grids": {flavor: [params]}, "train_start": train_start}
        return self.model_copy(update=update)
