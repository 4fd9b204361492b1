"""A materialization killed with SIGKILL mid-run, then run again, ends like an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlsd.features.online import OnlineStore, SqliteOnlineStore
from mlsd.features.store import FeatureStore
from mlsd.features.testing import synthetic_transactions, write_transactions
from mlsd.settings import Settings

# Materializes one day per chunk; after the third chunk commits it says so and waits to be
# killed, so the kill lands mid-run whatever the machine's load.
CHILD = """
import time
from mlsd.features.store import FeatureStore

def wait_after_three(view, done, total):
    if done == 3:
        print("committed", view, done, flush=True)
        time.sleep(600)

store = FeatureStore.open()  # MLSD_* from the environment, MLSD_REDIS_PREFIX included
store.materialize(chunk_days=1.0, progress=wait_after_three)
print("finished", flush=True)
"""


def _state(store: FeatureStore, online: OnlineStore) -> dict[object, object]:
    lookups = [(r.view.name, r.version, k) for r in store.batch_requests() for k in range(120)]
    return {
        lk: (rec.event_us, rec.created_us, tuple(rec.values))
        for lk, rec in zip(lookups, online.read(lookups), strict=True)
        if rec is not None
    }


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_killed_materialization_resumes_to_the_same_state(
    backend: str, home: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = Settings(home=home)
    env = {**os.environ, "MLSD_HOME": str(home)}
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        settings = Settings(home=home, online_store=url, redis_prefix=prefix)
        env.update(MLSD_ONLINE_STORE=url, MLSD_REDIS_PREFIX=prefix)
    tx = synthetic_transactions(n_customers=120, n_terminals=120, days=30, seed=3)
    dataset = write_transactions(tx, tmp_path / "ds")
    store = FeatureStore.open(settings)
    store.apply()
    store.build(dataset)
    view = store.batch_requests()[0]

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    try:
        line = child.stdout.readline()  # blocks until the third chunk is committed
        assert line == f"committed {view.view.name} 3\n", line
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert "finished" not in child.stdout.read()
    child.stdout.close()
    partial = store.online.watermark(view.view.name, view.version)
    assert partial is not None

    report = store.materialize(chunk_days=1.0)  # resume
    assert report.chunks[view.view.name] < 30  # it resumed, not restarted
    reference = SqliteOnlineStore(tmp_path / "reference.sqlite")
    store.materialize(online=reference)
    resumed, clean = _state(store, store.online), _state(store, reference)
    assert len(clean) > 100
    assert resumed == clean
    reference.close()
    store.close()
