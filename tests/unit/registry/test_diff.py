from __future__ import annotations

from mlsd.registry import Registry
from mlsd.registry.diff import diff
from mlsd.registry.testing import register_sample


def test_diff_shows_metrics_params_lineage_and_environment(registry: Registry) -> None:
    a = register_sample(registry, metrics={"auc_roc": 0.8}, seed=0)
    b = register_sample(registry, metrics={"auc_roc": 0.9, "average_precision": 0.5}, seed=1)
    env = b.environment
    b = b.model_copy(
        update={"environment": env.model_copy(update={"packages": {**env.packages, "x": "1"}})}
    )
    out = diff(a, b)
    assert (out["a"], out["b"]) == ("models:/fraud/1", "models:/fraud/2")
    assert out["metrics"]["auc_roc"] == {"a": 0.8, "b": 0.9, "same": False}
    assert out["metrics"]["average_precision"]["a"] is None
    assert out["params"]["seed"] == {"a": 0, "b": 1, "same": False}
    assert out["params"]["num_leaves"]["same"]
    assert out["lineage"]["feature_views.transaction_features"]["same"]
    assert not out["artifacts"]["model.lgb.txt"]["same"]
    assert out["environment"]["packages.x"] == {"a": "", "b": "1", "same": False}
    assert out["environment"]["python"]["same"]
