"""One suite for every metadata backend (SQLite, PostgreSQL) behind the Registry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlsd.errors import ConflictError, GateRejectedError, NotFoundError
from mlsd.registry import DecisionThreshold, PromotionGate, Registry
from mlsd.registry.local import LocalArtifactStore
from mlsd.registry.metadata import MetadataStore
from mlsd.registry.registry import open_metadata
from mlsd.registry.testing import register_sample
from mlsd.settings import Settings


@pytest.fixture
def registry(metadata: MetadataStore, tmp_path: Path) -> Registry:
    return Registry(metadata, LocalArtifactStore(tmp_path / "blobs"))


def test_register_and_read_back(registry: Registry) -> None:
    first = register_sample(registry, tags={"release": "v1"})
    second = register_sample(registry, seed=1)
    assert (first.version, second.version) == (1, 2)
    assert registry.get("fraud", 1) == first
    assert registry.latest("fraud") == second
    assert registry.resolve("models:/fraud/2").environment == second.environment
    assert registry.list_models()[0].latest_version == 2
    registry.set_alias("fraud", "champion", 1, reason="", actor="a")
    assert registry.resolve("fraud@champion") == first
    assert registry.resolve("fraud@champion").tags == {"release": "v1"}
    assert registry.resolve("fraud/2").tags == {}


def test_alias_moves_history_and_rollback(registry: Registry) -> None:
    for _ in range(3):
        register_sample(registry)
    for version in (1, 2, 3):
        registry.set_alias("fraud", "champion", version, reason=f"v{version}", actor="a")
    registry.set_alias("fraud", "challenger", 1, reason="c", actor="a")
    assert registry.aliases("fraud") == {"challenger": 1, "champion": 3}
    assert registry.rollback("fraud", "champion", reason="bad", actor="b").to_version == 2
    assert registry.resolve("fraud@champion").version == 2
    history = registry.alias_history("fraud", "champion")
    assert [(m.from_version, m.to_version, m.kind) for m in history] == [
        (None, 1, "set"),
        (1, 2, "set"),
        (2, 3, "set"),
        (3, 2, "rollback"),
    ]
    assert all(m.at.tzinfo is not None for m in history)
    assert len(registry.alias_history("fraud")) == 5
    assert registry.list_models()[0].aliases == {"challenger": 1, "champion": 2}


def test_aliases_of_unknown_models_are_not_found(metadata: MetadataStore) -> None:
    now = datetime.now(UTC)
    with pytest.raises(NotFoundError):
        metadata.move_alias("fraud", "champion", 1, kind="set", reason="", actor="a", at=now)
    with pytest.raises(NotFoundError):
        metadata.rollback_alias("fraud", "champion", reason="", actor="a", at=now)
    with pytest.raises(NotFoundError):
        metadata.get_alias("fraud", "champion")
    with pytest.raises(NotFoundError):
        metadata.get_by_alias("fraud", "champion")


def test_stale_promotion_is_a_conflict(registry: Registry) -> None:
    register_sample(registry)
    register_sample(registry)
    registry.set_alias("fraud", "champion", 2, reason="", actor="a")
    with pytest.raises(ConflictError):
        registry.metadata.move_alias(
            "fraud",
            "champion",
            1,
            kind="promote",
            reason="",
            actor="a",
            at=datetime.now(UTC),
            check_from=True,
            expected_from=1,
        )
    assert registry.aliases("fraud") == {"champion": 2}
    assert len(registry.alias_history("fraud")) == 1


def test_gate_decisions_are_recorded(registry: Registry) -> None:
    register_sample(registry, metrics={"auc_roc": 0.9})
    register_sample(registry, metrics={"auc_roc": 0.7})
    gate = PromotionGate(max_regression={"auc_roc": 0.01})
    registry.promote("fraud", 1, gate=gate, actor="ci", reason="first")
    with pytest.raises(GateRejectedError):
        registry.promote("fraud", 2, gate=gate, actor="ci", reason="worse")
    decisions = registry.decisions("fraud")
    assert [(d.version, d.accepted) for d in decisions] == [(1, True), (2, False)]
    assert decisions[1].checks[0].bound == pytest.approx(0.89)
    assert decisions[1].gate == gate


def test_tag_search_and_edits(registry: Registry) -> None:
    register_sample(registry, tags={"release": "v3.2-prod"})
    register_sample(registry, tags={"release": "v3.3"})
    register_sample(registry, "other", tags={"release": "v3.2-prod"})
    found = registry.search(tag_key="release", tag_value="v3.2-prod")
    assert [v.uri for v in found] == ["models:/fraud/1", "models:/other/1"]
    assert [v.version for v in registry.search(name="fraud")] == [2, 1]
    registry.set_tags("fraud/2", {"release": "v3.2-prod", "owner": "risk"})
    assert len(registry.search(tag_key="release", tag_value="v3.2-prod")) == 3
    registry.set_tags("fraud/2", {}, remove=("owner",))
    assert registry.get("fraud", 2).tags == {"release": "v3.2-prod"}
    assert registry.set_status("fraud/1", "archived").status == "archived"


def test_state_survives_reopening(registry: Registry, db_url: str, tmp_path: Path) -> None:
    mv = register_sample(registry)
    registry.set_alias("fraud", "champion", 1, reason="", actor="a")
    again = open_metadata(Settings(home=tmp_path, registry_db=db_url))
    try:
        assert again.get_version("fraud", again.get_alias("fraud", "champion")) == mv
        assert again.environment(mv.environment.digest) == mv.environment
    finally:
        again.close()


def test_unknown_things_are_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError):
        registry.get("fraud", 1)
    with pytest.raises(NotFoundError):
        registry.metadata.environment("0" * 64)
    assert registry.metadata.latest_version("fraud") is None
    assert registry.aliases("fraud") == {}
    assert registry.alias_history("fraud") == []


THRESHOLD = DecisionThreshold(
    value=0.3712,
    policy="alert_budget",
    parameter=100.0,
    validation={"card_precision": 0.62, "card_recall": 0.4, "cards_per_day": 94.0, "days": 28.0},
)


def test_the_decision_threshold_round_trips(
    registry: Registry, db_url: str, tmp_path: Path
) -> None:
    stored = register_sample(registry, threshold=THRESHOLD)
    plain = register_sample(registry)
    registry.set_alias("fraud", "champion", 1, reason="", actor="a")
    assert stored.threshold == THRESHOLD
    assert plain.threshold is None
    assert registry.get("fraud", 1).threshold == THRESHOLD
    assert registry.resolve("fraud@champion").threshold == THRESHOLD
    assert [mv.threshold for mv in registry.search("fraud")] == [None, THRESHOLD]
    fresh = open_metadata(Settings(home=tmp_path, registry_db=db_url))  # no parsed cache
    try:
        again = fresh.get_version("fraud", 1)
    finally:
        fresh.close()
    assert again.threshold == THRESHOLD
    assert again == stored


def test_versions_stored_before_thresholds_existed_read_none(
    registry: Registry, db_url: str, tmp_path: Path
) -> None:
    import json

    old = register_sample(registry)
    with registry.metadata._write() as tx:  # type: ignore[attr-defined]
        (body,) = tx.run(
            "SELECT body FROM model_versions WHERE name = ? AND version = ?", ("fraud", 1)
        )[0]
        fields = json.loads(body)
        del fields["threshold"]  # the body as registries wrote it before the field existed
        tx.run(
            "UPDATE model_versions SET body = ? WHERE name = ? AND version = ?",
            (json.dumps(fields), "fraud", 1),
        )
    fresh = open_metadata(Settings(home=tmp_path, registry_db=db_url))
    try:
        read = fresh.get_version("fraud", 1)
    finally:
        fresh.close()
    assert read.threshold is None
    assert read == old
