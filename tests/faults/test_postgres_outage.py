"""PostgreSQL (registry and prediction log) gone for 2 s under load, through the tests'
proxy: every connection reset and new ones refused. Scoring does not notice, an alias
moved during the outage is served at most 2 s after PostgreSQL is back, and every
answered prediction reaches the log (kept, then written once the database returns)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mlsd.features.store import FeatureStore
from mlsd.inference.batcher import BatchConfig
from mlsd.inference.host import ModelHost
from mlsd.predlog import make_prediction_log, open_reader
from mlsd.registry import Registry
from mlsd.serving.app import create_app
from mlsd.serving.server import BackgroundServer
from mlsd.serving.service import ServeOptions, Service
from mlsd.serving.testing import register_tiny_model, seed_feature_store
from mlsd.settings import Settings
from tests.faults.load import open_loop
from tests.faults.proxy import FaultProxy

pytestmark = [pytest.mark.postgres, pytest.mark.faults]

RATE = 100.0
DOWN_AT, DOWN_S, AFTER_S = 1.0, 2.0, 3.0
MOVE_AT = 1.5  # the alias moves while PostgreSQL is unreachable for the server


def test_postgres_gone_2s_serving_goes_on_the_watcher_catches_up_no_row_lost(
    home: Path, postgres_url: str, postgres_schema: str, postgres_proxy: FaultProxy,
    artifacts: dict[int, dict[str, bytes]],
) -> None:  # fmt: skip
    direct = f"{postgres_url}?schema={postgres_schema}"
    through = f"{postgres_proxy.url(postgres_url)}?schema={postgres_schema}"
    admin = Registry.open(Settings(home=home, registry_db=direct))  # the operator's, direct
    served = Settings(home=home, registry_db=through, prediction_log=through)
    store = FeatureStore.open(served)
    views = seed_feature_store(store)
    for version in (1, 2):
        register_tiny_model(admin, artifacts[version], views)
    admin.set_alias("fraud", "champion", 1, reason="test", actor="test")
    registry = Registry.open(served)
    service = Service(
        served,
        ModelHost(registry, served_views=store.view_versions, poll_interval_s=0.1),
        options=ServeOptions(batching=BatchConfig(32, 0.0), tune_process=True),
        features=store,
        prediction_log=make_prediction_log(served),
    )
    service.owned = [registry, store]
    service.load_all()  # the alias watcher runs (watch_aliases defaults on)
    marks: dict[str, float] = {}

    def fault(t: float) -> None:
        if t >= DOWN_AT and "down" not in marks:
            postgres_proxy.refuse()
            marks["down"] = time.monotonic()
        elif t >= MOVE_AT and "moved" not in marks:
            admin.set_alias("fraud", "champion", 2, reason="test", actor="test")
            marks["moved"] = time.monotonic()
        elif t >= DOWN_AT + DOWN_S and "up" not in marks:
            postgres_proxy.resume()
            marks["up"] = time.monotonic()

    server = BackgroundServer(create_app(served, service=service)).start()
    try:
        answers = open_loop(server.url, RATE, DOWN_AT + DOWN_S + AFTER_S, fault, tag="pg")
    finally:
        postgres_proxy.resume()
        server.stop()  # the log's last records are written at the stop
        admin.close()
    up = marks["up"]

    assert [a for a in answers if a.status != 200] == [], "serving needs no database"
    assert not any(a.degraded for a in answers)
    first_v2 = next((a.due for a in answers if a.version == 2), None)
    assert first_v2 is not None, "the alias move was never served"
    assert first_v2 >= marks["moved"]
    caught_up_s = first_v2 - up
    assert caught_up_s <= 2.0, f"served v2 {caught_up_s:.2f} s after PostgreSQL came back"
    assert all(a.version == 2 for a in answers if a.due >= first_v2)
    logged = open_reader(Settings(home=home, prediction_log=direct)).read()["request_id"]
    assert logged.is_unique
    missing = {a.request_id for a in answers} - set(logged)
    assert not missing, f"{len(missing)} answered predictions not in the log"
    print(f"postgres outage: v2 served {caught_up_s:.2f} s after it came back, 0 lost")
