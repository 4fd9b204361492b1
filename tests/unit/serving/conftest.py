"""Fixtures for the serving tests: a registry holding two tiny real models, a served app."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlsd.features.store import FeatureStore
from mlsd.inference.batcher import BatchConfig
from mlsd.inference.cache import MemoryCache
from mlsd.inference.host import ModelHost
from mlsd.registry import Registry
from mlsd.serving.app import create_app
from mlsd.serving.jobs import MemoryJobQueue
from mlsd.serving.service import ServeOptions, Service
from mlsd.serving.testing import register_tiny_model, seed_feature_store, tiny_model_artifacts
from mlsd.settings import Settings


@pytest.fixture(scope="session")
def artifacts() -> dict[int, dict[str, bytes]]:
    """Two distinct model versions' artifacts, trained once per session."""
    return {1: tiny_model_artifacts(1), 2: tiny_model_artifacts(2)}


@pytest.fixture
def settings(home: Path) -> Settings:
    """Settings on a fresh data folder."""
    return Settings(home=home)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def online_settings(request: pytest.FixtureRequest, home: Path) -> Settings:
    """Settings on a fresh data folder with the online store on each backend (embedded,
    then the real Redis under a fresh key prefix)."""
    if request.param == "redis":
        return Settings(
            home=home,
            online_store=request.getfixturevalue("redis_url"),
            redis_prefix=request.getfixturevalue("redis_prefix"),
        )
    return Settings(home=home)


@pytest.fixture
def store(settings: Settings) -> Iterator[FeatureStore]:
    """The embedded feature store with the handbook views and a few customers' features."""
    fs = FeatureStore.open(settings)
    seed_feature_store(fs)
    yield fs
    fs.close()


@pytest.fixture
def registry(
    settings: Settings, store: FeatureStore, artifacts: dict[int, dict[str, bytes]]
) -> Iterator[Registry]:
    """A registry with fraud/1 (champion) and fraud/2, both on the served feature views."""
    reg = Registry.open(settings)
    views = store.view_versions()
    register_tiny_model(reg, artifacts[1], views)
    register_tiny_model(reg, artifacts[2], views)
    reg.set_alias("fraud", "champion", 1, reason="test", actor="test")
    yield reg
    reg.close()


def make_service(
    settings: Settings,
    registry: Registry,
    store: FeatureStore | None,
    *,
    batching: BatchConfig | None = None,
    cache: bool = True,
    load: bool = True,
    **options: Any,
) -> Service:
    """A service on the test registry, models loaded (watcher off unless asked)."""
    host = ModelHost(
        registry, served_views=store.view_versions if store else None, poll_interval_s=0.1
    )
    predlog = options.pop("prediction_log", None)
    opts = ServeOptions(
        batching=batching or BatchConfig(max_batch_size=32, max_delay_ms=-1),
        watch_aliases=options.pop("watch_aliases", False),
        watch_rollouts=options.pop("watch_rollouts", False),
        **options,
    )
    service = Service(
        settings, host, options=opts, features=store,
        cache=MemoryCache(1000, 60.0) if cache else None,
        jobs=MemoryJobQueue(settings.home),
        prediction_log=predlog,
    )  # fmt: skip
    if load:
        service.load_all()
    return service


@pytest.fixture
def service(settings: Settings, registry: Registry, store: FeatureStore) -> Iterator[Service]:
    """A loaded service with a cache, no prediction log, no watcher."""
    svc = make_service(settings, registry, store)
    yield svc
    svc.close()


def test_client() -> Any:
    """Starlette's TestClient class, imported without its httpx deprecation warning."""
    import warnings

    from starlette.exceptions import StarletteDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient
    return TestClient


@pytest.fixture
def make_client() -> Iterator[Any]:
    """Opens a TestClient (lifespan run) on an app; all are closed after the test."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield lambda app: stack.enter_context(test_client()(app))


@pytest.fixture
def client(settings: Settings, service: Service, make_client: Any) -> Any:
    """A TestClient on the app."""
    return make_client(create_app(settings, service=service))


@pytest.fixture
def build_service(settings: Settings, registry: Registry) -> Iterator[Any]:
    """`build(store, **options) -> Service` on the test registry; closed after the test."""
    made: list[Service] = []

    def build(store: Any, **options: Any) -> Service:
        svc = make_service(settings, registry, store, **options)
        made.append(svc)
        return svc

    yield build
    for svc in made:
        svc.close()


def wait_for_job(client: Any, job_id: str, timeout_s: float = 20.0) -> dict[str, Any]:
    """Poll `GET /v1/jobs/{id}` until the job is done or failed; its last body."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if body["state"] in ("done", "failed"):
            return body
        time.sleep(0.02)
    raise AssertionError("job did not finish")
