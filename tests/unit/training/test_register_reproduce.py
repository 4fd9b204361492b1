from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.errors import ValidationError
from mlsd.features.store import FeatureStore
from mlsd.registry import PromotionGate, Registry
from mlsd.settings import Settings
from mlsd.training.dataset import matrix
from mlsd.training.models import onnx_scorer
from mlsd.training.pipeline import TrainResult, register_result
from mlsd.training.reproduce import reproduce


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    opened = Registry.open(Settings(home=tmp_path / "home"))
    yield opened
    opened.close()


class ShiftedAmounts:
    """A feature source whose amounts are off by 1 %: a silent skew to detect."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    def get_training_set(
        self, entity_df: pd.DataFrame, features: list[str], timestamp_column: str = "TX_DATETIME"
    ) -> pd.DataFrame:
        out = self.store.get_training_set(entity_df, features, timestamp_column)
        out["TX_AMOUNT"] = out["TX_AMOUNT"] * 1.01
        return out

    def view_versions(self) -> dict[str, str]:
        return self.store.view_versions()


def test_register_records_lineage_and_serves_onnx(
    registry: Registry, trained: TrainResult, store: FeatureStore
) -> None:
    mv = register_result(registry, trained, "fraud", flavor="lightgbm")
    assert mv.version == 1
    assert mv.flavor == "lightgbm"
    assert set(mv.artifacts) == {"model.onnx", "model.lgb.txt", "reference_profile.json"}
    lineage = mv.lineage
    assert lineage.training_set_hash == trained.training_set_hash
    assert lineage.feature_views == store.view_versions()
    assert lineage.dataset_hash == trained.dataset_hash
    assert lineage.parent_version is None
    assert lineage.code_commit
    assert lineage.train_period is not None
    assert lineage.train_period[0].date() == trained.split.train_start
    assert lineage.config["params"] == trained.models["lightgbm"].params
    assert mv.metrics["auc_roc"] == trained.models["lightgbm"].metrics["auc_roc"]
    chosen = trained.models["lightgbm"].threshold
    assert mv.threshold is not None
    assert (mv.threshold.value, mv.threshold.policy) == (chosen.value, "alert_budget")
    assert (mv.threshold.parameter, mv.threshold.validation) == (100.0, chosen.validation)
    assert registry.get("fraud", 1).threshold == mv.threshold  # read back from the store
    assert "valid_average_precision" in mv.metrics
    assert mv.signature.feature_names == list(trained.config.features)
    # the ONNX artifact as serving loads it scores like the trained model
    features = trained.config.features
    frame = trained.test
    served = onnx_scorer(registry.load_artifact(mv, "model.onnx"))(matrix(frame, features))
    native = trained.models["lightgbm"].model.predict(matrix(frame, features))
    np.testing.assert_allclose(served, native, atol=1e-5)

    registry.promote("fraud", 1, gate=PromotionGate(), actor="test", reason="first")
    second = register_result(registry, trained, "fraud", flavor="logistic")
    assert second.lineage.parent_version == 1
    assert set(second.artifacts) == {"model.onnx", "coefficients.json", "reference_profile.json"}
    with pytest.raises(ValidationError):
        register_result(registry, trained, "fraud", flavor="forest")


def test_the_reference_profile_is_the_training_rows(
    registry: Registry, trained: TrainResult
) -> None:
    mv = register_result(registry, trained, "fraud", flavor="lightgbm")
    profile = registry.reference_profile(mv)
    features = list(trained.config.features)
    assert profile.feature_names == features
    assert profile.n_rows == trained.n_train
    assert all(
        f.n == trained.n_train and sum(f.counts) == f.n - f.missing for f in profile.features
    )
    amount = profile.feature("TX_AMOUNT")
    assert amount.kind == "numeric"
    assert len(amount.edges) == 9
    assert amount.mean == pytest.approx(
        float(trained.train_features[:, features.index("TX_AMOUNT")].mean()), rel=1e-5
    )  # type: ignore[index]
    assert profile.feature("TX_DURING_WEEKEND").kind == "categorical"
    assert profile.score is not None
    assert profile.score.n == len(trained.test)
    assert profile.pca is not None
    assert 0.9 <= profile.pca.explained <= 1.0
    # the label-free estimate's calibration: the test rows' labels on their scores
    assert profile.calibration is not None
    assert profile.calibration.n == len(trained.test)
    assert profile.calibration.positives == int(trained.test["TX_FRAUD"].sum())


@pytest.mark.parametrize("flavor", ["lightgbm", "logistic"])
def test_reproduce_matches_exactly(
    registry: Registry, trained: TrainResult, store: FeatureStore, flavor: str
) -> None:
    mv = register_result(registry, trained, "fraud", flavor=flavor)
    report = reproduce(registry, mv.uri, source=store)
    assert report.matches, report.problems
    assert report.max_abs_diff == 0.0
    assert report.onnx_max_abs_diff < 1e-5
    assert report.training_set_hash_matches
    assert report.dataset_hash_matches
    assert report.feature_views_match
    assert report.n_rows == len(trained.test)
    assert report.reproduced_metrics == pytest.approx(report.recorded_metrics)


def test_reproduce_detects_a_skewed_feature(
    registry: Registry, trained: TrainResult, store: FeatureStore
) -> None:
    mv = register_result(registry, trained, "fraud", flavor="logistic")
    report = reproduce(registry, mv.uri, source=ShiftedAmounts(store))
    assert not report.matches
    assert not report.training_set_hash_matches
    assert report.max_abs_diff > 0
    assert any("hash" in p for p in report.problems)


def test_reproduce_needs_a_recorded_config(registry: Registry, trained: TrainResult) -> None:
    from mlsd.registry import Lineage, Signature

    mv = registry.register(
        "bare",
        trained.models["logistic"].model.artifacts(list(trained.config.features)),
        flavor="logistic",
        signature=Signature(list(trained.config.features), ["float32"] * 15),
        lineage=Lineage(),
        params={},
        metrics={},
    )
    with pytest.raises(ValidationError) as info:
        reproduce(registry, mv.uri, source=ShiftedAmounts.__new__(ShiftedAmounts))
    assert info.value.field == "lineage"
