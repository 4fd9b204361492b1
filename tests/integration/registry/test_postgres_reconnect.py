"""The registry on PostgreSQL survives a dropped connection: the alias watcher follows on.

A server restart, a failover or an idle connection killed by `pg_terminate_backend` used to
leave the registry's one connection dead for good: promotions and rollbacks were ignored
while the server kept serving the old version.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlsd.errors import UnavailableError
from mlsd.inference.host import ModelHost
from mlsd.registry import Registry
from mlsd.registry.testing import register_sample
from mlsd.settings import Settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def registry(postgres_url: str, postgres_schema: str, tmp_path: Path) -> Iterator[Registry]:
    """A registry as users get it: metadata on PostgreSQL by settings, two versions."""
    settings = Settings(home=tmp_path, registry_db=f"{postgres_url}?schema={postgres_schema}")
    reg = Registry.open(settings)
    register_sample(reg, seed=1)
    register_sample(reg, seed=2)
    reg.set_alias("fraud", "champion", 1, reason="test", actor="test")
    yield reg
    reg.close()


def _drop_connection(registry: Registry, postgres_url: str) -> None:
    """What a restart or `pg_terminate_backend` does to the registry's connection."""
    import psycopg

    pid = registry.metadata._conn.info.backend_pid  # type: ignore[attr-defined]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # gone for sure: no race with the next query
            found = admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
            if found.fetchone() is None:
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} still there")


def test_a_dropped_connection_is_replaced_at_the_next_call(
    registry: Registry, postgres_url: str
) -> None:
    _drop_connection(registry, postgres_url)
    with pytest.raises(UnavailableError, match="registry database"):
        registry.aliases("fraud")  # the call that meets the dead connection fails, clearly
    assert registry.aliases("fraud") == {"champion": 1}  # and the next one reconnects


def test_the_alias_watcher_follows_a_move_after_the_connection_dropped(
    registry: Registry, postgres_url: str
) -> None:
    host = ModelHost(registry, poll_interval_s=3600)  # polled by hand below
    assert host.load("fraud@champion").version == 1
    _drop_connection(registry, postgres_url)
    with pytest.raises(UnavailableError):
        host.refresh()  # the poll that met the dead connection: the watcher logs, goes on
    registry.set_alias("fraud", "champion", 2, reason="rollout", actor="test")
    assert host.refresh() == 1
    assert host.get("fraud", alias="champion").version == 2
