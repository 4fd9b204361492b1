"""Blue-green and shadow rollouts carried out by the agent: switch, mirror, roll back, promote."""

from __future__ import annotations

from mlsd.registry import Registry
from mlsd.rollout import RolloutSpec
from mlsd.rollout.manage import RolloutManager
from mlsd.serving.service import Service
from tests.unit.inference.layers import Seen
from tests.unit.rollout.conftest import send


def test_blue_green_switches_at_once_and_rolls_back_at_once(
    service: Service, registry: Registry
) -> None:
    agent = service.rollouts
    assert agent is not None
    manager = RolloutManager(registry)
    manager.start(RolloutSpec(id="bg", kind="bluegreen", champion=1, challenger=2), actor="t")
    agent.sync()
    seen = Seen()
    service.pipeline.add_observer(seen)
    send(service, range(100))
    assert {(b.variant, b.model.version) for b in seen.batches} == {("bg:green", 2)}
    assert service.host.get("fraud", alias="champion").version == 1, "blue stays loaded"
    manager.rollback("bg", actor="t")
    agent.sync()
    seen.batches.clear()
    send(service, range(100, 200))
    assert {(b.variant, b.model.version) for b in seen.batches} == {("champion", 1)}


def test_a_promoted_blue_green_rolled_back_returns_to_the_pinned_champion(
    service: Service, registry: Registry
) -> None:
    agent = service.rollouts
    assert agent is not None
    manager = RolloutManager(registry)
    manager.start(RolloutSpec(id="bg", kind="bluegreen", champion=1, challenger=2), actor="t")
    agent.sync()
    manager.promote("bg", actor="t")
    agent.sync()
    assert service.host.get("fraud", alias="champion").version == 2
    assert not service.pipeline.layers
    manager.rollback("bg", actor="t")
    agent.sync()
    service.host.refresh()
    assert registry.aliases("fraud")["champion"] == 1
    moves = registry.alias_history("fraud", "champion")
    assert [(m.kind, m.to_version) for m in moves[-2:]] == [("promote", 2), ("rollback", 1)]


def test_a_shadow_rollout_mirrors_and_never_answers(service: Service, registry: Registry) -> None:
    import asyncio

    agent = service.rollouts
    assert agent is not None
    RolloutManager(registry).start(
        RolloutSpec(id="s1", kind="shadow", champion=1, challenger=2, share=100), actor="t"
    )
    agent.sync()
    seen = Seen()
    service.pipeline.add_observer(seen)
    send(service, range(50))
    asyncio.run(service.pipeline.drain())
    roles = {(b.role, b.variant, b.model.version) for b in seen.batches}
    assert roles == {("primary", "champion", 1), ("shadow", "s1:shadow", 2)}
    assert sum(b.role == "shadow" for b in seen.batches) == 50
