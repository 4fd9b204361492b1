from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.errors import NotFoundError, ValidationError
from mlsd.features.store import FeatureStore
from mlsd.training.config import TrainConfig
from mlsd.training.dataset import (
    dataset_period,
    load_transactions,
    training_frame,
    training_set_hash,
)
from mlsd.training.pipeline import TrainResult, train
from mlsd.training.protocol import split_frame
from mlsd.training.selection import MEAN_RANK, choose


def test_trains_both_flavors_on_the_latest_block(trained: TrainResult, dataset_dir: Path) -> None:
    first, end = dataset_period(dataset_dir)
    assert (first, end) == (date(2018, 4, 1), date(2018, 5, 16))
    assert trained.split.test_end == end  # the handbook's dates are not in 45 days
    assert trained.split.train_start == end - timedelta(days=21)
    assert [s.test_start for s in trained.validation_splits] == [
        trained.split.train_start,
        trained.split.train_start - timedelta(days=7),
    ]
    assert set(trained.models) == {"lightgbm", "logistic"}
    for result in trained.models.values():
        assert set(result.metrics) == {"auc_roc", "average_precision", "card_precision_at_100"}
        assert result.metrics["auc_roc"] > 0.6  # it learns something
        assert len(result.scores) == len(trained.test)
    lightgbm = trained.models["lightgbm"]
    assert len(lightgbm.selection.candidates) == 2
    assert all(len(c.folds) == 2 for c in lightgbm.selection.candidates)
    assert lightgbm.params == lightgbm.selection.best.params
    assert trained.config.selection_metric == MEAN_RANK  # the default rule
    flavors = list(trained.models)
    bests = [trained.models[f].selection.best.metrics for f in flavors]
    assert trained.primary == flavors[choose(bests, MEAN_RANK)]
    assert len(trained.feature_views) == 3


def test_test_rows_follow_the_protocol(
    trained: TrainResult, store: FeatureStore, config: TrainConfig
) -> None:
    split = trained.split
    transactions = load_transactions(Path(config.dataset), split.train_start, split.test_end)
    train_rows, test_rows = split_frame(transactions, split)
    assert trained.n_train == len(train_rows)
    assert trained.test["TRANSACTION_ID"].tolist() == test_rows["TRANSACTION_ID"].tolist()
    days = trained.test["TX_DATETIME"].dt.date
    assert days.min() >= split.test_start
    assert days.max() < split.test_end
    frame = training_frame(store, train_rows, config.features)
    assert training_set_hash(frame, config.features) == trained.training_set_hash


def test_training_features_come_from_the_point_in_time_join(
    store: FeatureStore, config: TrainConfig
) -> None:
    from mlsd.features.reference import reference_features

    everything = load_transactions(Path(config.dataset), date(2018, 4, 1), date(2018, 5, 16))
    week = everything[everything["TX_DATETIME"] >= pd.Timestamp("2018-05-01", tz="UTC")]
    # a sample of cards; the slow pandas reference only needs their own history and that
    # of the terminals they used
    week = week[week["CUSTOMER_ID"].isin(week["CUSTOMER_ID"].drop_duplicates().head(15))]
    history = everything[
        everything["CUSTOMER_ID"].isin(week["CUSTOMER_ID"])
        | everything["TERMINAL_ID"].isin(week["TERMINAL_ID"])
    ]
    frame = training_frame(store, week, config.features).set_index("TRANSACTION_ID")
    assert len(frame) > 50
    expected = reference_features(history).loc[frame.index, config.features]
    np.testing.assert_allclose(frame[config.features].to_numpy(), expected.to_numpy(), atol=1e-9)


def test_an_explicit_start_must_fit(config: TrainConfig, store: FeatureStore) -> None:
    late = config.model_copy(update={"train_start": date(2018, 5, 1)})
    with pytest.raises(ValidationError) as info:
        train(late, store)
    assert info.value.field == "train_start"
    early = config.model_copy(update={"train_start": date(2018, 4, 5)})
    with pytest.raises(ValidationError) as info:  # no validation fold fits before it
        train(early, store)
    assert info.value.field == "train_start"


def test_bad_configs_are_refused(config: TrainConfig, store: FeatureStore) -> None:
    with pytest.raises(ValidationError) as info:
        TrainConfig.make(dataset="x", n_folds=0)
    assert info.value.field == "n_folds"
    with pytest.raises(ValidationError) as info:
        TrainConfig.make(dataset="x", models=["xgboost"])
    assert info.value.field.startswith("models")
    with pytest.raises(ValidationError) as info:
        TrainConfig.make(dataset="x", bogus=1)
    assert info.value.field == "bogus"
    long = config.model_copy(update={"train_days": 40})
    with pytest.raises(ValidationError) as info:
        train(long, store)
    assert info.value.field == "dataset"
    with pytest.raises(NotFoundError):
        train(config.model_copy(update={"dataset": "/nonexistent/dataset"}), store)
    no_grid = config.model_copy(update={"grids": {"lightgbm": []}, "models": ["lightgbm"]})
    with pytest.raises(ValidationError) as info:
        train(no_grid, store)
    assert info.value.field == "grids"


def test_threshold_is_chosen_on_the_validation_folds_only(
    trained: TrainResult, store: FeatureStore, config: TrainConfig
) -> None:
    from mlsd.training.pipeline import load_frame
    from mlsd.training.selection import make_folds
    from mlsd.training.threshold import choose_threshold

    start = min(s.train_start for s in trained.validation_splits)
    frame = load_frame(config, store, start, trained.split.test_end)
    folds = make_folds(frame, trained.validation_splits)
    for result in trained.models.values():
        best = result.selection.best
        assert [len(s) for s in best.scores] == [len(f.test) for f in folds]
        expected = choose_threshold(
            "alert_budget",
            pd.concat([f.test for f in folds], ignore_index=True),
            np.concatenate(best.scores),
            alert_budget_k=100,
        )
        assert result.threshold == expected
        # 2 folds of 7 test days: validation days, never the 7 test days
        assert result.threshold.validation["days"] == 14.0
        assert result.threshold.validation["cards_per_day"] <= 100


def test_expected_cost_policy_is_configurable(config: TrainConfig, store: FeatureStore) -> None:
    costly = config.model_copy(
        update={"threshold_policy": "expected_cost", "review_cost": 2.0, "models": ["logistic"]}
    )
    result = train(costly, store).models["logistic"]
    assert (result.threshold.policy, result.threshold.parameter) == ("expected_cost", 2.0)
    assert result.threshold.validation["net_gain_per_day"] > 0


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"threshold_policy": "f1"}, "threshold_policy"),
        ({"alert_budget": 0}, "alert_budget"),
        ({"review_cost": -1.0}, "review_cost"),
        ({"review_cost": float("inf")}, "review_cost"),
    ],
)
def test_bad_threshold_settings_name_the_field(values: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TrainConfig.make(dataset="x", **values)
    assert caught.value.field == field
