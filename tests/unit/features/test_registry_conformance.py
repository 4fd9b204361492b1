"""One suite for every definitions registry backend: versions, current, history."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from mlsd.errors import NotFoundError
from mlsd.features.handbook import CUSTOMER_VIEW, TERMINAL_VIEW
from mlsd.features.registry import DefinitionRegistry, SqliteDefinitionRegistry
from mlsd.features.store import open_registry
from mlsd.settings import Settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DefinitionRegistry]:
    """Each registry backend, opened from settings like `FeatureStore.open` opens it."""
    url = ""
    if request.param == "postgres":
        url = f"{request.getfixturevalue('postgres_url')}?schema="
        url += request.getfixturevalue("postgres_schema")
    reg = open_registry(Settings(home=tmp_path, feature_registry=url))
    yield reg
    reg.close()


def test_apply_and_read_back(registry: DefinitionRegistry) -> None:
    out = registry.apply([CUSTOMER_VIEW, TERMINAL_VIEW])
    assert out == {
        "customer_spending": CUSTOMER_VIEW.version,
        "terminal_risk": TERMINAL_VIEW.version,
    }
    assert registry.current() == out
    assert registry.get("customer_spending") == CUSTOMER_VIEW
    assert registry.get("terminal_risk", TERMINAL_VIEW.version) == TERMINAL_VIEW


def test_new_version_keeps_the_old_readable(registry: DefinitionRegistry) -> None:
    registry.apply([CUSTOMER_VIEW])
    v2 = replace(CUSTOMER_VIEW, ttl=timedelta(days=10))
    registry.apply([v2])
    assert registry.current()["customer_spending"] == v2.version
    assert registry.get("customer_spending") == v2
    assert registry.get("customer_spending", CUSTOMER_VIEW.version) == CUSTOMER_VIEW
    assert registry.versions("customer_spending") == [CUSTOMER_VIEW.version, v2.version]
    registry.apply([v2])  # no change, no history entry
    registry.apply([CUSTOMER_VIEW])  # roll back: current again, history grows
    history = [(c.view, c.version, c.previous) for c in registry.history()]
    assert history == [
        ("customer_spending", CUSTOMER_VIEW.version, None),
        ("customer_spending", v2.version, CUSTOMER_VIEW.version),
        ("customer_spending", CUSTOMER_VIEW.version, v2.version),
    ]
    assert registry.history()[0].applied_at.tzinfo is not None
    assert registry.current()["customer_spending"] == CUSTOMER_VIEW.version


def test_unknown_names_and_versions(registry: DefinitionRegistry) -> None:
    with pytest.raises(NotFoundError) as info:
        registry.get("nope")
    assert info.value.field == "view"
    registry.apply([CUSTOMER_VIEW])
    with pytest.raises(NotFoundError) as info:
        registry.get("customer_spending", "deadbeef")
    assert info.value.field == "version"


def test_sqlite_registry_is_usable_and_closable_from_another_thread(tmp_path: Path) -> None:
    """A server opens the registry on one thread and closes it on another."""
    import threading

    registry = SqliteDefinitionRegistry(tmp_path / "defs.db")
    registry.apply([CUSTOMER_VIEW])
    errors: list[BaseException] = []

    def elsewhere() -> None:
        try:
            assert registry.current() == {CUSTOMER_VIEW.name: CUSTOMER_VIEW.version}
            registry.close()
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert errors == []
