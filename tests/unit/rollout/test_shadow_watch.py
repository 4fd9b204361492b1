"""A running shadow that approves what the champion blocks is stopped by the agent (the
dangerous-divergence rule on its live pairs); an equally good one runs on."""

from __future__ import annotations

import asyncio

from mlsd.registry import Registry
from mlsd.rollout import RolloutSpec
from mlsd.rollout.manage import RolloutManager
from mlsd.rollout.shadow_watch import ShadowWatch
from mlsd.rollout.testing import bad_challenger
from mlsd.serving.service import Service
from tests.unit.rollout.conftest import send


def _start(service: Service, registry: Registry, rid: str) -> None:
    agent = service.rollouts
    assert agent is not None
    spec = RolloutSpec(id=rid, kind="shadow", champion=1, challenger=2, share=100, interval_s=0.1)
    RolloutManager(registry).start(spec, actor="t")
    agent.sync()


def test_a_shadow_approving_the_champions_blocks_is_aborted(
    service: Service, registry: Registry
) -> None:
    agent = service.rollouts
    assert agent is not None
    agent.endpoint_for = bad_challenger(service.host, "constant", service.metrics)
    _start(service, registry, "s-bad")
    watch = agent.installed["s-bad"].watch
    assert isinstance(watch, ShadowWatch)
    send(service, range(1400))  # every 7th transaction is large: the champion blocks those
    asyncio.run(service.pipeline.drain())
    assert watch.pairs == 1400
    assert agent.watch_shadow("s-bad") == "abort"
    record = registry.rollouts.get_rollout("s-bad")
    assert record.state == "aborted"
    assert "s-bad" not in agent.installed, "the shadow layer is gone"
    assert not service.pipeline.layers
    events = registry.rollouts.rollout_events("s-bad")
    assert "dangerous divergence" in events[-1].reason
    assert watch.alert is not None
    assert watch.alert.approved == watch.alert.blocks, "a constant 0.02 approves every block"


def test_an_equally_good_shadow_runs_on(service: Service, registry: Registry) -> None:
    agent = service.rollouts
    assert agent is not None
    _start(service, registry, "s-good")
    send(service, range(1400))
    asyncio.run(service.pipeline.drain())
    assert agent.watch_shadow("s-good") == "wait"
    assert registry.rollouts.get_rollout("s-good").state == "running"


def test_the_watch_forgets_the_oldest_answers_beyond_its_bound() -> None:
    from types import SimpleNamespace

    from mlsd.inference.observers import ScoringRequest
    from tests.unit.rollout.conftest import transaction

    watch = ShadowWatch("s", max_pending=10)
    for i in range(50):
        request = ScoringRequest(f"q{i}", "score", [transaction(i)])
        batch = SimpleNamespace(request=request, variant="champion", role="primary",
                                decisions=["legit"])  # fmt: skip
        watch.observe(batch)  # type: ignore[arg-type]
    assert list(watch._pending) == [f"q{i}" for i in range(40, 50)]
    assert watch.check() is None, "no pairs, no alert"
