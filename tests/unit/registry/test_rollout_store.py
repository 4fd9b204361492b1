"""Rollout state in the registry database, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlsd.errors import ConflictError, NotFoundError
from mlsd.registry import Registry
from mlsd.registry.rollouts import AliasTarget, RolloutEvent, RolloutRecord
from mlsd.registry.testing import register_sample
from mlsd.settings import Settings

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_settings(request: pytest.FixtureRequest, home: Path) -> Settings:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")
        return Settings(home=home, registry_db=f"{url}?schema={schema}")
    return Settings(home=home)


@pytest.fixture
def reg(db_settings: Settings) -> Iterator[Registry]:
    r = Registry.open(db_settings)
    yield r
    r.close()


def _record(rid: str, endpoint: str = "fraud") -> RolloutRecord:
    return RolloutRecord(
        id=rid, endpoint=endpoint, kind="canary", spec="{}", state="running", share=1.0,
        started_at=T0, updated_at=T0,
    )  # fmt: skip


def _event(rid: str, kind: str = "start", **more: object) -> RolloutEvent:
    return RolloutEvent.model_validate(
        {"rollout_id": rid, "at": T0, "kind": kind, "step": 0, "share": 1.0,
         "decision": kind, "actor": "test", **more}
    )  # fmt: skip


def test_one_running_rollout_per_endpoint(reg: Registry) -> None:
    store = reg.rollouts
    clock = store.rollout_clock()
    store.create_rollout(_record("r1"), _event("r1"))
    assert store.rollout_clock() > clock
    with pytest.raises(ConflictError) as info:
        store.create_rollout(_record("r2"), _event("r2"))
    assert info.value.field == "endpoint"
    assert "r1" in info.value.message
    with pytest.raises(ConflictError) as taken:
        store.create_rollout(_record("r1", endpoint="other"), _event("r1"))
    assert taken.value.field == "id"
    store.create_rollout(_record("r3", endpoint="other"), _event("r3"))  # another endpoint
    store.transition("r1", _event("r1", "abort"), state="aborted", share=0.0)
    store.create_rollout(_record("r2"), _event("r2"))  # the endpoint is free again
    assert [r.id for r in store.list_rollouts("fraud", active_only=True)] == ["r2"]
    assert store.get_rollout("r1").state == "aborted"


def test_a_transition_checks_state_and_records_history(reg: Registry) -> None:
    store = reg.rollouts
    store.create_rollout(_record("r1"), _event("r1"))
    store.transition(
        "r1", _event("r1", "check", figures={"p99_ms": 3.5}), expect_checks=0, checks=1
    )
    with pytest.raises(ConflictError) as stale:  # another process checked first
        store.transition("r1", _event("r1", "check"), expect_checks=0, checks=1)
    assert stale.value.field == "checks"
    store.transition("r1", _event("r1", "abort"), state="aborted", share=0.0)
    with pytest.raises(ConflictError) as info:
        store.transition("r1", _event("r1", "promote"), state="promoted")
    assert info.value.field == "state"
    assert "aborted" in info.value.message
    history = store.rollout_events("r1")
    assert [e.kind for e in history] == ["start", "check", "abort"]
    assert history[1].figures == {"p99_ms": 3.5}
    with pytest.raises(NotFoundError):
        store.rollout_events("nope")


def test_a_promotion_moves_the_alias_in_the_same_transaction(reg: Registry) -> None:
    register_sample(reg)
    register_sample(reg, seed=1)
    reg.set_alias("fraud", "champion", 1, reason="first", actor="test")
    reg.rollouts.create_rollout(_record("r1"), _event("r1"))
    event = _event("r1", "promote", reason="5 checks passed: p99 3.1 ms")
    target = AliasTarget(name="fraud", alias="champion", version=2, kind="promote")
    reg.rollouts.transition("r1", event, move=target, state="promoted", share=100.0)
    assert reg.aliases("fraud")["champion"] == 2
    last = reg.alias_history("fraud", "champion")[-1]
    assert (last.kind, last.from_version, last.to_version) == ("promote", 1, 2)
    assert "rollout r1: 5 checks passed" in last.reason
    reg.rollouts.create_rollout(_record("r2"), _event("r2"))
    bad = AliasTarget(name="fraud", alias="champion", version=9, kind="promote")
    with pytest.raises(NotFoundError):
        reg.rollouts.transition("r2", _event("r2", "promote"), move=bad, state="promoted")
    assert reg.rollouts.get_rollout("r2").state == "running", "nothing half-done"


def test_one_lease_holder_at_a_time(reg: Registry) -> None:
    store = reg.rollouts
    store.create_rollout(_record("r1"), _event("r1"))
    later = T0 + timedelta(seconds=2)
    assert store.take_lease("r1", "a", now=T0, until=later)
    assert not store.take_lease("r1", "b", now=T0 + timedelta(seconds=1), until=later)
    assert store.take_lease("r1", "a", now=T0 + timedelta(seconds=1), until=later)  # renewal
    assert store.take_lease(
        "r1", "b", now=later + timedelta(seconds=1), until=later + timedelta(seconds=5)
    )
    assert store.get_rollout("r1").holder == "b"
