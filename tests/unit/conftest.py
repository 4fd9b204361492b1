"""The serving fixtures (settings, store, registry, service, clients) for every unit test
folder that scores (inference, predlog, rollout ...); a folder's own conftest overrides them."""

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
