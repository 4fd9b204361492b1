"""The serving fixtures (settings, store, registry, service), shared with these tests."""

from tests.unit.serving.conftest import (  # noqa: F401
    artifacts,
    build_service,
    client,
    make_client,
    registry,
    service,
    settings,
    store,
)
