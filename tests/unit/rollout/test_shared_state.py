"""Two servers on one registry database route alike and follow each change within a second,
on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlsd.features.store import FeatureStore
from mlsd.inference.observers import ScoringRequest
from mlsd.registry import Registry
from mlsd.rollout import RolloutSpec
from mlsd.rollout.manage import RolloutManager
from mlsd.serving.service import Service
from mlsd.serving.testing import register_tiny_model
from mlsd.settings import Settings
from tests.unit.rollout.conftest import transaction, wait_until
from tests.unit.serving.conftest import make_service


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(
    request: pytest.FixtureRequest, home: Path, store: FeatureStore,
    artifacts: dict[int, dict[str, bytes]],
) -> Iterator[tuple[Registry, Service, Service]]:  # fmt: skip
    settings = Settings(home=home)
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")
        settings = Settings(home=home, registry_db=f"{url}?schema={schema}")
    admin = Registry.open(settings)
    for seed in (1, 2):
        register_tiny_model(admin, artifacts[seed], store.view_versions())
    admin.set_alias("fraud", "champion", 1, reason="test", actor="test")
    services: list[Service] = []
    registries = [Registry.open(settings) for _ in range(2)]
    for reg in registries:
        services.append(
            make_service(settings, reg, store, watch_rollouts=True, rollout_poll_s=0.05)
        )
    yield admin, services[0], services[1]
    for svc in services:
        svc.close()
    for reg in [*registries, admin]:
        reg.close()


def _arms(service: Service, customers: range) -> list[str]:
    return [
        service.pipeline.route(ScoringRequest("x", "score", [transaction(c)])).primary.name
        for c in customers
    ]


def test_two_servers_route_alike_and_follow_within_a_second(
    shared: tuple[Registry, Service, Service],
) -> None:
    admin, a, b = shared
    manager = RolloutManager(admin)
    spec = RolloutSpec(id="ab1", kind="ab", champion=1, challenger=2,
                       weights={"champion": 70, "challenger": 30})  # fmt: skip
    started = time.monotonic()
    manager.start(spec, actor="test")
    assert wait_until(lambda: bool(a.pipeline.layers) and bool(b.pipeline.layers), 5.0)
    assert time.monotonic() - started < 1.0
    arms = _arms(a, range(1000))
    assert arms == _arms(b, range(1000)), "the same customer, the same arm, in both servers"
    assert 0.25 < arms.count("ab1:challenger") / 1000 < 0.35
    started = time.monotonic()
    manager.abort("ab1", actor="test")
    assert wait_until(lambda: not a.pipeline.layers and not b.pipeline.layers, 5.0)
    assert time.monotonic() - started < 1.0


def test_a_rollback_decided_in_one_server_reaches_the_other_under_load(
    shared: tuple[Registry, Service, Service],
) -> None:
    admin, a, b = shared
    assert a.rollouts is not None
    assert b.rollouts is not None
    b.rollouts.control = False  # a decides (in production: whoever holds the lease)
    RolloutManager(admin).start(
        RolloutSpec(id="c1", kind="canary", champion=1, challenger=2, steps=[50, 100]),
        actor="test",
    )
    assert wait_until(lambda: "c1" in a.rollouts.installed and "c1" in b.rollouts.installed)  # type: ignore[union-attr]
    failures: list[BaseException] = []
    answered: list[str] = []
    stop = threading.Event()

    def load() -> None:
        async def main() -> None:
            i = 0
            while not stop.is_set():
                try:
                    batch = await b.score(ScoringRequest(f"q{i}", "score", [transaction(i)]))
                    answered.append(batch.variant)
                except BaseException as exc:  # noqa: BLE001 - counted, the test fails on any
                    failures.append(exc)
                i += 1
                await asyncio.sleep(0)

        asyncio.run(main())

    thread = threading.Thread(target=load)
    thread.start()
    try:
        assert wait_until(lambda: "c1:challenger" in answered, 5.0)
        controller = a.rollouts.controller("c1")
        controller.layer.set_share(0.0)  # what a failed check does first, here ...
        started = time.monotonic()
        a.rollouts.manager.rollback("c1", actor="controller", reason="test")  # ... then this
        seen = len(answered)
        assert wait_until(lambda: not b.pipeline.layers, 5.0)
        took = time.monotonic() - started
        # the load sends one request at a time: the one in flight may have been routed
        # before the layer went, every later one after
        n = len(answered) + 1
        assert wait_until(lambda: len(answered) > n + 50, 5.0)
    finally:
        stop.set()
        thread.join(10)
    assert took < 1.0, f"the other server followed after {took:.2f} s"
    assert not failures, failures[:3]
    assert "c1:challenger" not in answered[n:], "nobody on the challenger after the rollback"
    assert seen > 0
