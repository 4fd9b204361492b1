"""Variants are made, measured on the source's test block, registered with lineage, served."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from mlsd.compression.calibration import calibration_set
from mlsd.compression.measure import Budget
from mlsd.compression.methods import Options
from mlsd.compression.quantize import int8_static, matmul_layers
from mlsd.compression.run import Compression, compress
from mlsd.errors import ValidationError
from mlsd.features.store import FeatureStore
from mlsd.registry import Registry
from mlsd.registry.formats import LIGHTGBM_ARTIFACT, ONNX_ARTIFACT
from mlsd.settings import Settings

METHODS = ("fewer_trees", "pruned_ensemble", "distilled_gbm", "distilled_mlp", "int8_static")


@pytest.fixture(scope="module")
def compressed(world: Settings) -> Iterator[Compression]:
    store = FeatureStore.open(world)
    try:
        with Registry.open(world) as registry:
            yield compress(
                registry,
                "fraud@champion",
                store,
                options=Options(methods=METHODS, mlp_iterations=10),
                budget=Budget.quick(),
            )
    finally:
        store.close()


def test_every_variant_is_measured_and_registered_with_its_lineage(
    compressed: Compression, world: Settings
) -> None:
    assert [v.method for v in compressed.variants] == [
        "fewer_trees",
        "pruned_ensemble",
        "distilled_gbm",
        "distilled_mlp",
        "int8_static",
    ]
    rows = {(m.variant, m.runtime) for m in compressed.measured}
    assert ("source v1", "lightgbm") in rows
    assert ("source v1", "onnxruntime") in rows
    trees = compressed.variants[0]
    assert trees.params["trees"] < trees.params["source_trees"]
    for m in compressed.measured:
        assert 0.0 < m.average_precision <= 1.0
        assert 0.5 < m.auc_roc <= 1.0
        assert m.p99_us >= m.p50_us > 0
        assert m.rows_per_s[1024] > 0
        assert m.usd_per_million > 0
    with Registry.open(world) as registry:
        for name, mv in compressed.registered.items():
            stored = registry.get("fraud", mv.version)
            assert stored.lineage.parent_version == 1
            info = stored.lineage.config["compression"]
            assert info["source"] == "models:/fraud/1"
            assert stored.threshold is not None
            registry.verify(stored)
            if info["method"] == "int8_static":
                assert stored.flavor == "onnx"
                assert info["derived_from"] == "student-mlp-fp32"
                calibration = info["calibration_set"]
                assert calibration["rows"] == 2048
                assert calibration["frauds"] > 0
                assert len(calibration["sha256"]) == 64
            if info["method"] in ("fewer_trees", "pruned_ensemble", "distilled_gbm"):
                assert set(stored.artifacts) == {ONNX_ARTIFACT, LIGHTGBM_ARTIFACT}
            assert name in stored.description


def test_a_pruned_tree_model_scores_as_its_reweighted_trees(compressed: Compression) -> None:
    """The edited LightGBM text and its ONNX export agree on the test rows."""
    from mlsd.compression.trees import booster

    pruned = next(v for v in compressed.variants if v.method == "pruned_ensemble")
    X = compressed.blocks.X("test")
    assert pruned.lightgbm is not None
    native = booster(pruned.lightgbm).predict(X)
    np.testing.assert_allclose(pruned.score(X), native, atol=1e-5)


def test_a_quantized_variant_is_served_by_v1_score(
    compressed: Compression, world: Settings
) -> None:
    from mlsd.inference.host import ModelHost
    from mlsd.serving.app import create_app
    from mlsd.serving.service import ServeOptions, Service
    from tests.unit.serving.conftest import test_client

    version = compressed.registered["student-mlp-int8-static"].version
    store = FeatureStore.open(world)
    registry = Registry.open(world)
    try:
        host = ModelHost(registry, served_views=store.view_versions)
        options = ServeOptions(
            models=(f"fraud/{version}",),
            watch_aliases=False,
            log_predictions=False,
            cache_predictions=False,
        )
        service = Service(world, host, options=options, features=store)
        service.load_all()
        with test_client()(create_app(world, service=service)) as client:
            body: dict[str, Any] = {
                "transaction_id": 1,
                "customer_id": 3,
                "terminal_id": 5,
                "amount": 120.0,
                "timestamp": "2018-05-01T12:00:00Z",
            }
            response = client.post("/v1/score", json=body)
        service.close()
    finally:
        registry.close()
        store.close()
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert (result["model"], result["version"]) == ("fraud", version)
    assert 0.0 <= result["score"] <= 1.0


def test_a_tree_graph_is_refused_for_int8(compressed: Compression) -> None:
    source = compressed.variants[0]
    with pytest.raises(ValidationError, match="no MatMul"):
        matmul_layers(source.onnx)


def test_an_empty_or_one_class_calibration_set_is_refused(compressed: Compression) -> None:
    X, y = compressed.blocks.X("train"), compressed.blocks.y("train")
    with pytest.raises(ValidationError, match="empty"):
        calibration_set(X, y, rows=0)
    with pytest.raises(ValidationError, match="only legitimate"):
        calibration_set(X, y, rows=64, legit_only=True)
    student = next(v for v in compressed.variants if v.method == "distilled_mlp")
    with pytest.raises(ValidationError, match="empty"):
        int8_static(student.onnx, X[:0])


class _ShiftedAmounts:
    """A feature store whose amounts drifted by 1 % since training: other training rows."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    def get_training_set(
        self, entity_df: Any, features: list[str], timestamp_column: str = "TX_DATETIME"
    ) -> Any:
        out = self.store.get_training_set(entity_df, features, timestamp_column)
        out["TX_AMOUNT"] = out["TX_AMOUNT"] * 1.01
        return out

    def view_versions(self) -> dict[str, str]:
        return self.store.view_versions()


def test_rows_that_are_not_the_training_rows_are_refused(world: Settings) -> None:
    from mlsd.errors import ConflictError

    store = FeatureStore.open(world)
    try:
        with Registry.open(world) as registry:
            before = len(registry.search(name="fraud"))
            with pytest.raises(ConflictError, match="training set hash"):
                compress(
                    registry,
                    "fraud@champion",
                    _ShiftedAmounts(store),
                    options=Options(methods=("distilled_gbm",)),
                    budget=Budget.quick(),
                )
            assert len(registry.search(name="fraud")) == before
    finally:
        store.close()


def test_a_compressed_variant_goes_through_a_canary_to_promotion(
    compressed: Compression, world: Settings
) -> None:
    """A variant is a version like any other: rolled out by the canary controller, judged
    on the traffic it answers, promoted (the alias moves to it)."""
    from mlsd.inference.host import ModelHost
    from mlsd.rollout import RolloutSpec
    from mlsd.rollout.manage import RolloutManager
    from mlsd.serving.service import ServeOptions, Service
    from tests.unit.rollout.conftest import send

    (variant,) = [
        mv.version for name, mv in compressed.registered.items() if name.startswith("fewer-trees-")
    ]
    store = FeatureStore.open(world)
    registry = Registry.open(world)
    champion = registry.aliases("fraud")["champion"]
    try:
        host = ModelHost(registry, served_views=store.view_versions)
        options = ServeOptions(watch_aliases=False, log_predictions=False, cache_predictions=False)
        service = Service(world, host, options=options, features=store)
        service.load_all()
        agent = service.rollouts
        assert agent is not None
        spec = RolloutSpec(
            id="compressed-canary", kind="canary", champion=champion, challenger=variant,
            steps=[50, 100], interval_s=0.1, max_failed_checks=1,
            guardrails={"max_error_rate": 0.01, "max_p99_ms": 1000, "max_score_psi": 10,
                        "min_requests": 20},
        )  # fmt: skip
        RolloutManager(registry).start(spec, actor="test")
        agent.sync()
        decisions = []
        for wave in range(6):
            send(service, range(wave * 200, wave * 200 + 200), customers=300)
            decisions.append(agent.check(spec.id))
            if decisions[-1] in ("promote", "rollback"):
                break
        exposed = agent.installed.get(spec.id)
        service.close()
        assert decisions[-1] == "promote", decisions
        assert exposed is None, "the ended canary's layer is gone"
        assert registry.aliases("fraud")["champion"] == variant
        moves = registry.alias_history("fraud", "champion")
        assert moves[-1].to_version == variant
        assert "compressed-canary" in moves[-1].reason
    finally:
        # the module's other tests expect the source as champion
        registry.set_alias("fraud", "champion", champion, reason="test: restore", actor="t")
        registry.close()
        store.close()
