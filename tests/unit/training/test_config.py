from __future__ import annotations

from datetime import date

import pytest

from mlsd.errors import ValidationError
from mlsd.training.config import HANDBOOK_TRAIN_START, TrainConfig


def test_the_handbook_block_when_the_dataset_covers_it() -> None:
    config = TrainConfig.make(dataset="x")
    split = config.test_split(date(2018, 4, 1), date(2018, 10, 1))
    assert split.train_start == HANDBOOK_TRAIN_START
    assert (split.test_start, split.test_end) == (date(2018, 8, 8), date(2018, 8, 15))


def test_the_latest_block_otherwise() -> None:
    config = TrainConfig.make(dataset="x", train_days=5, delay_days=3, test_days=4)
    split = config.test_split(date(2018, 4, 1), date(2018, 5, 1))
    assert split.test_end == date(2018, 5, 1)
    assert split.train_start == date(2018, 4, 19)


def test_an_explicit_start_is_kept_or_refused() -> None:
    config = TrainConfig.make(dataset="x", train_start=date(2018, 4, 2))
    assert config.test_split(date(2018, 4, 1), date(2018, 5, 1)).train_start == date(2018, 4, 2)
    with pytest.raises(ValidationError) as info:
        config.test_split(date(2018, 4, 3), date(2018, 5, 1))
    assert info.value.field == "train_start"


def test_selection_metric_names() -> None:
    assert TrainConfig.make(dataset="x").metric_name == "mean_rank"
    config = TrainConfig.make(dataset="x", selection_metric="card_precision", top_k=50)
    assert config.metric_name == "card_precision_at_50"
    with pytest.raises(ValidationError) as info:
        TrainConfig.make(dataset="x", selection_metric="f1")
    assert info.value.field == "selection_metric"


def test_replay_narrows_to_one_model() -> None:
    config = TrainConfig.make(dataset="x").replay("logistic", {"C": 2.0}, date(2018, 5, 1))
    assert config.models == ["logistic"]
    assert config.grids == {"logistic": [{"C": 2.0}]}
    assert config.train_start == date(2018, 5, 1)
    assert TrainConfig.make(**config.model_dump(mode="json")) == config
