"""The model host: load by alias or version, refuse foreign feature views, fall back, follow."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mlsd.errors import ConflictError, NotFoundError, ValidationError
from mlsd.features.store import FeatureStore
from mlsd.inference.host import ModelHost, parse_ref
from mlsd.registry import Lineage, Registry, Signature
from mlsd.serving.testing import FEATURES, register_tiny_model


def test_parse_ref() -> None:
    assert parse_ref("fraud@champion") == ("fraud", "champion", None)
    assert parse_ref("models:/fraud/3") == ("fraud", None, 3)
    for bad in ("fraud", "fraud/0", "fraud/x", "@x", ""):
        with pytest.raises(ValidationError):
            parse_ref(bad)


def test_load_by_alias_runs_onnx_and_matches_lightgbm(
    registry: Registry, store: FeatureStore, artifacts: dict[int, dict[str, bytes]]
) -> None:
    host = ModelHost(registry, served_views=store.view_versions)
    model = host.load("fraud@champion")
    assert (model.key, model.runtime.name, model.threshold) == ("fraud/1", "onnxruntime", 0.5)
    assert host.get("fraud", alias="champion") is model
    assert host.get("fraud", version=1) is model
    lgb_only = register_tiny_model(
        registry, {"model.lgb.txt": artifacts[1]["model.lgb.txt"]}, store.view_versions()
    )
    fallback = host.load(f"fraud/{lgb_only.version}")
    assert fallback.runtime.name == "lightgbm"
    rows = np.random.default_rng(0).normal(size=(50, len(FEATURES))).astype(np.float32)
    np.testing.assert_allclose(model.predict(rows), fallback.predict(rows), atol=1e-5)


def test_refuses_a_model_on_feature_views_it_does_not_serve(
    registry: Registry, store: FeatureStore, artifacts: dict[int, dict[str, bytes]]
) -> None:
    views = {**store.view_versions(), "customer_spending": "0" * 64}
    foreign = register_tiny_model(registry, artifacts[1], views)
    host = ModelHost(registry, served_views=store.view_versions)
    with pytest.raises(ConflictError) as err:
        host.load(f"fraud/{foreign.version}")
    assert err.value.field == "feature_views"
    assert not host.ready


def test_refresh_follows_a_moved_alias_and_drops_the_old_version(registry: Registry) -> None:
    host = ModelHost(registry)
    swaps: list[tuple[int | None, int]] = []
    host.on_swap(lambda old, new: swaps.append((old.version if old else None, new.version)))
    host.load("fraud@champion")
    assert host.refresh() == 0
    registry.set_alias("fraud", "champion", 2, reason="test", actor="test")
    assert host.refresh() == 1
    assert host.get("fraud", alias="champion").version == 2
    assert [m.key for m in host.models()] == ["fraud/2"]
    assert swaps == [(None, 1), (1, 2)]
    with pytest.raises(NotFoundError):
        host.get("fraud", version=1)
    host.unload("fraud", alias="champion")
    assert not host.ready


class _Flaky:
    """The real registry, but the first polls of `aliases` fail."""

    def __init__(self, registry: Registry, failures: int) -> None:
        self._registry = registry
        self.failures = failures
        self.resolve = registry.resolve
        self.load_artifact = registry.load_artifact

    def aliases(self, name: str) -> dict[str, int]:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("registry unreachable")
        return self._registry.aliases(name)


def test_watcher_survives_failing_polls_and_follows_the_alias(registry: Registry) -> None:
    import time

    flaky = _Flaky(registry, failures=3)
    host = ModelHost(flaky, poll_interval_s=0.02)
    host.load("fraud@champion")
    host.start()
    try:
        registry.set_alias("fraud", "champion", 2, reason="test", actor="test")
        deadline = time.monotonic() + 5
        while host.get("fraud", alias="champion").version != 2:
            assert time.monotonic() < deadline, "the watcher never switched"
            time.sleep(0.02)
    finally:
        host.stop()
    assert flaky.failures == 0
    assert host.last_error is None


def test_serves_the_stored_threshold_and_warns_for_versions_without_one(
    registry: Registry,
    store: FeatureStore,
    artifacts: dict[int, dict[str, bytes]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = ModelHost(registry, served_views=store.view_versions)
    chosen = register_tiny_model(registry, artifacts[1], store.view_versions(), threshold=0.3125)
    with caplog.at_level(logging.WARNING, logger="mlsd.inference.host"):
        assert host.load(f"fraud/{chosen.version}").threshold == 0.3125
    assert "no stored decision threshold" not in caplog.text
    legacy = registry.register(  # as versions were registered before thresholds were stored
        "fraud",
        artifacts[1],
        flavor="lightgbm",
        signature=Signature(FEATURES, ["float32"] * len(FEATURES)),
        lineage=Lineage(feature_views=store.view_versions()),
        params={},
        metrics={"threshold": 0.9},  # a metric is not a decision threshold
    )
    with caplog.at_level(logging.WARNING, logger="mlsd.inference.host"):
        model = host.load(f"fraud/{legacy.version}")
    assert model.threshold == 0.5
    assert f"models:/fraud/{legacy.version} has no stored decision threshold" in caplog.text
