"""Fixtures of the fault suite: proxies in front of the shared Redis and PostgreSQL, and a
served app (uvicorn on a thread) whose backends all go through them."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.faults.proxy import FaultProxy
from tests.unit.serving.conftest import artifacts  # noqa: F401


def _proxy(url: str) -> Iterator[FaultProxy]:
    parts = urlsplit(url)
    proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 0).start()
    yield proxy
    proxy.close()


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[FaultProxy]:
    """A proxy in front of the shared Redis."""
    yield from _proxy(redis_url)


@pytest.fixture
def postgres_proxy(postgres_url: str) -> Iterator[FaultProxy]:
    """A proxy in front of the shared PostgreSQL."""
    yield from _proxy(postgres_url)
