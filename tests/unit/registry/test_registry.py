from __future__ import annotations

from pathlib import Path

import pytest

from mlsd.errors import (
    ConfigError,
    ConflictError,
    GateRejectedError,
    IntegrityError,
    NotFoundError,
    ValidationError,
)
from mlsd.registry import Lineage, PromotionGate, Registry
from mlsd.registry.registry import open_artifacts, open_metadata
from mlsd.registry.testing import register_sample, sample_lineage, sample_signature, tiny_lightgbm
from mlsd.settings import Settings

GATE = PromotionGate(min_metrics={"auc_roc": 0.8}, max_regression={"auc_roc": 0.01})


def test_versions_auto_increment_per_name(registry: Registry) -> None:
    assert [register_sample(registry).version for _ in range(3)] == [1, 2, 3]
    assert register_sample(registry, "other").version == 1
    assert registry.latest("fraud").version == 3
    assert [m.name for m in registry.list_models()] == ["fraud", "other"]


def test_a_version_keeps_everything_it_was_given(registry: Registry) -> None:
    mv = register_sample(registry, tags={"release": "v3.2-prod"})
    got = registry.resolve("models:/fraud/1")
    assert got == mv
    assert got.uri == "models:/fraud/1"
    assert got.lineage.feature_views == {"transaction_features": "1"}
    assert got.lineage.train_period is not None
    assert got.lineage.train_period[0].tzinfo is not None
    assert got.signature == sample_signature()
    assert got.tags == {"release": "v3.2-prod"}
    assert got.created_at.tzinfo is not None
    assert "numpy" in got.environment.packages
    assert registry.load_artifact(got, "model.lgb.txt") == tiny_lightgbm(0)


def test_aliases_resolve_and_every_move_is_recorded(registry: Registry) -> None:
    for _ in range(3):
        register_sample(registry)
    registry.set_alias("fraud", "champion", 1, reason="first", actor="ana")
    registry.set_alias("fraud", "challenger", 2, reason="try", actor="ana")
    registry.set_alias("fraud", "champion", 3, reason="better", actor="bob")
    assert registry.resolve("models:/fraud@champion").version == 3
    assert registry.resolve("fraud@challenger").version == 2
    assert registry.aliases("fraud") == {"challenger": 2, "champion": 3}
    moves = registry.alias_history("fraud", "champion")
    assert [(m.from_version, m.to_version, m.actor, m.reason) for m in moves] == [
        (None, 1, "ana", "first"),
        (1, 3, "bob", "better"),
    ]
    assert len(registry.alias_history("fraud")) == 3


def test_rollback_moves_the_alias_back_and_the_history_shows_it(registry: Registry) -> None:
    for _ in range(3):
        register_sample(registry)
    for v in (1, 2, 3):
        registry.set_alias("fraud", "champion", v, reason=f"to {v}", actor="ana")
    move = registry.rollback("fraud", "champion", reason="bad canary", actor="oncall")
    assert (move.from_version, move.to_version, move.kind) == (3, 2, "rollback")
    assert registry.rollback("fraud", "champion", reason="again", actor="oncall").to_version == 1
    assert registry.resolve("fraud@champion").version == 1
    with pytest.raises(ConflictError):
        registry.rollback("fraud", "champion", reason="too far", actor="oncall")
    kinds = [m.kind for m in registry.alias_history("fraud", "champion")]
    assert kinds == ["set", "set", "set", "rollback", "rollback"]


def test_deleting_an_alias_is_recorded(registry: Registry) -> None:
    register_sample(registry)
    registry.set_alias("fraud", "challenger", 1, reason="x", actor="a")
    registry.delete_alias("fraud", "challenger", reason="done", actor="a")
    assert registry.aliases("fraud") == {}
    with pytest.raises(NotFoundError):
        registry.resolve("fraud@challenger")
    with pytest.raises(NotFoundError):
        registry.delete_alias("fraud", "challenger", reason="twice", actor="a")
    assert registry.alias_history("fraud")[-1].to_version is None


def test_promotion_passes_the_gate_and_records_the_decision(registry: Registry) -> None:
    register_sample(registry, metrics={"auc_roc": 0.85})
    register_sample(registry, metrics={"auc_roc": 0.86})
    first = registry.promote("fraud", 1, gate=GATE, actor="ci", reason="first champion")
    assert first.accepted
    assert first.champion_version is None
    second = registry.promote("fraud", 2, gate=GATE, actor="ci", reason="retrain")
    assert second.accepted
    assert second.champion_version == 1
    assert registry.aliases("fraud") == {"champion": 2}
    assert [d.version for d in registry.decisions("fraud")] == [1, 2]
    assert registry.alias_history("fraud", "champion")[-1].kind == "promote"


def test_a_refused_promotion_is_recorded_and_moves_nothing(registry: Registry) -> None:
    register_sample(registry, metrics={"auc_roc": 0.90})
    register_sample(registry, metrics={"auc_roc": 0.85})
    registry.promote("fraud", 1, gate=GATE, actor="ci", reason="first")
    with pytest.raises(GateRejectedError, match="auc_roc"):
        registry.promote("fraud", 2, gate=GATE, actor="ci", reason="worse")
    assert registry.aliases("fraud") == {"champion": 1}
    refused = registry.decisions("fraud")[-1]
    assert not refused.accepted
    assert refused.failures[0].metric == "auc_roc"
    forced = registry.promote("fraud", 2, gate=GATE, actor="boss", reason="hotfix", force=True)
    assert forced.accepted
    assert forced.forced
    assert registry.aliases("fraud") == {"champion": 2}


def test_tags_are_searchable_and_editable(registry: Registry) -> None:
    register_sample(registry, tags={"release": "v3.2-prod", "team": "risk"})
    register_sample(registry, tags={"team": "risk"})
    register_sample(registry, "other", tags={"team": "risk"})
    assert [v.version for v in registry.search(tag_key="release", tag_value="v3.2-prod")] == [1]
    assert [v.uri for v in registry.search(tag_key="team")] == [
        "models:/fraud/2",
        "models:/fraud/1",
        "models:/other/1",
    ]
    assert len(registry.search(name="fraud", tag_key="team", tag_value="risk")) == 2
    assert len(registry.search(name="fraud", limit=1)) == 1
    tagged = registry.set_tags("fraud/2", {"release": "v3.3"}, remove=("team",))
    assert tagged.tags == {"release": "v3.3"}
    assert registry.search(tag_key="release", tag_value="v3.3")[0].tags == {"release": "v3.3"}
    with pytest.raises(ValidationError):
        registry.search(tag_value="x")


def test_archiving_changes_status_only(registry: Registry) -> None:
    register_sample(registry)
    assert registry.resolve("fraud/1").status == "ready"  # now in the parsed-version cache
    assert registry.set_status("fraud/1", "archived").status == "archived"
    assert registry.resolve("fraud/1").status == "archived"
    with pytest.raises(ConflictError):
        registry.promote("fraud", 1, gate=GATE, actor="ci", reason="archived")
    with pytest.raises(ValidationError):
        registry.set_status("fraud/1", "deleted")


def test_missing_things_are_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError):
        registry.resolve("fraud/1")
    with pytest.raises(NotFoundError):
        registry.latest("fraud")
    register_sample(registry)
    with pytest.raises(NotFoundError):
        registry.resolve("fraud@champion")
    with pytest.raises(NotFoundError):
        registry.set_alias("fraud", "champion", 9, reason="", actor="a")
    with pytest.raises(NotFoundError):
        registry.set_alias("ghost", "champion", 1, reason="", actor="a")
    with pytest.raises(NotFoundError):
        registry.load_artifact(registry.resolve("fraud/1"), "model.onnx")


def _register(registry: Registry, name: str = "fraud", **overrides: object) -> None:
    kwargs: dict[str, object] = {
        "flavor": "lightgbm",
        "signature": sample_signature(),
        "lineage": sample_lineage(),
        "params": {},
        "metrics": {"auc_roc": 0.9},
    }
    artifacts = overrides.pop("artifacts", {"model.lgb.txt": b"x"})
    kwargs.update(overrides)
    registry.register(name, artifacts, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "overrides", "field"),
    [
        ("../escape", {}, "name"),
        ("/etc/passwd", {}, "name"),
        ("fraud", {"artifacts": {"../../x": b"x"}}, "artifacts"),
        ("fraud", {"artifacts": {}}, "artifacts"),
        ("fraud", {"artifacts": {"m.txt": "text"}}, "artifacts"),
        ("fraud", {"flavor": "pickle"}, "flavor"),
        ("fraud", {"metrics": {"auc_roc": float("nan")}}, "metrics"),
        ("fraud", {"metrics": {"auc_roc": "high"}}, "metrics"),
        ("fraud", {"params": {"f": object()}}, "params"),
        ("fraud", {"tags": {"bad key": "v"}}, "tags"),
    ],
)
def test_bad_input_is_refused_and_stores_nothing(
    registry: Registry, name: str, overrides: dict[str, object], field: str, home: Path
) -> None:
    with pytest.raises(ValidationError) as info:
        _register(registry, name, **overrides)
    assert info.value.field == field
    assert registry.list_models() == []
    blobs = [p for p in (home / "registry" / "artifacts").rglob("*") if p.is_file()]
    assert blobs == []
    assert not (home.parent / "escape").exists()


def test_parent_version_must_exist(registry: Registry) -> None:
    with pytest.raises(NotFoundError):
        _register(registry, lineage=Lineage(parent_version=4))


def test_corrupt_or_missing_artifacts_are_refused_on_load(registry: Registry, home: Path) -> None:
    mv = register_sample(registry)
    digest = mv.artifacts["model.lgb.txt"]
    blob = home / "registry" / "artifacts" / digest[:2] / digest
    blob.write_bytes(blob.read_bytes()[:-10] + b"tampered!!")
    with pytest.raises(IntegrityError, match="corrupt"):
        registry.load_artifact(mv, "model.lgb.txt")
    with pytest.raises(IntegrityError):
        registry.verify(mv)
    blob.unlink()
    with pytest.raises(IntegrityError, match="missing"):
        registry.load_artifact(mv, "model.lgb.txt")


def test_identical_artifacts_are_stored_once(registry: Registry, home: Path) -> None:
    a, b = register_sample(registry), register_sample(registry)
    assert a.artifacts == b.artifacts
    blobs = [p for p in (home / "registry" / "artifacts").rglob("*") if p.is_file()]
    assert len(blobs) == 1


def test_backends_are_chosen_by_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        open_metadata(Settings(home=tmp_path, registry_db="mysql://x"))
    with pytest.raises(ConfigError):
        open_artifacts(Settings(home=tmp_path, artifacts="ftp://x"))
    store = open_metadata(Settings(home=tmp_path, registry_db=f"sqlite:///{tmp_path}/r.db"))
    store.close()
    assert (tmp_path / "r.db").exists()
    local = open_artifacts(Settings(home=tmp_path, artifacts=f"file://{tmp_path}/blobs"))
    assert local.describe() == f"{tmp_path}/blobs"


def test_reopening_sees_the_same_registry(registry: Registry, home: Path) -> None:
    register_sample(registry)
    registry.set_alias("fraud", "champion", 1, reason="r", actor="a")
    with Registry.open(Settings(home=home)) as again:
        assert again.resolve("fraud@champion") == registry.resolve("fraud/1")


def test_feature_view_versions_must_match_to_serve(registry: Registry) -> None:
    from mlsd.errors import ConflictError
    from mlsd.registry.compat import check_feature_views

    mv = register_sample(registry)
    check_feature_views(mv, {"transaction_features": "1", "other": "7"})
    with pytest.raises(ConflictError) as info:
        check_feature_views(mv, {"transaction_features": "2"})
    assert info.value.field == "feature_views"
    with pytest.raises(ConflictError, match="no such view"):
        check_feature_views(mv, {})


def test_threads_can_resolve_while_another_registers(registry: Registry) -> None:
    import threading

    register_sample(registry)
    registry.set_alias("fraud", "champion", 1, reason="r", actor="a")
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            for _ in range(200):
                assert registry.resolve("fraud@champion").version >= 1
                registry.aliases("fraud")
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=poll) for _ in range(3)]
    for thread in threads:
        thread.start()
    for version in range(2, 12):
        register_sample(registry)
        registry.set_alias("fraud", "champion", version, reason="r", actor="a")
    for thread in threads:
        thread.join()
    assert errors == []
    assert registry.resolve("fraud@champion").version == 11
