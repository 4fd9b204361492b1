"""Every Redis component keys under `{MLSD_REDIS_PREFIX}{component}:`, the CLI included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlsd.cli.main import app
from mlsd.features.online import WriteBatch
from mlsd.features.store import FeatureStore
from mlsd.features.testing import synthetic_transactions, write_transactions
from mlsd.inference.cache import make_cache
from mlsd.serving.jobs import JobSpec, make_job_queue
from mlsd.serving.wiring import open_features
from mlsd.settings import Settings, get_settings

pytestmark = pytest.mark.redis


def test_cli_materialize_and_serving_read_the_same_prefix(
    home: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    transactions = synthetic_transactions(n_customers=20, n_terminals=30, days=20, seed=3)
    dataset = write_transactions(transactions, home.parent / "dataset")
    monkeypatch.setenv("MLSD_ONLINE_STORE", redis_url)
    monkeypatch.setenv("MLSD_REDIS_PREFIX", redis_prefix)
    get_settings.cache_clear()
    runner = CliRunner()
    for args in (["features", "apply"], ["features", "build", str(dataset)]):
        out = runner.invoke(app, args)
        assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["features", "materialize"])
    assert out.exit_code == 0, out.output

    tx = transactions.iloc[-1]
    request = {
        "CUSTOMER_ID": int(tx["CUSTOMER_ID"]),
        "TERMINAL_ID": int(tx["TERMINAL_ID"]),
        "TX_AMOUNT": 10.0,
        "TX_DATETIME": pd.Timestamp(tx["TX_DATETIME"]).to_pydatetime(),
    }
    served = open_features(Settings(home=home, online_store=redis_url, redis_prefix=redis_prefix))
    assert isinstance(served, FeatureStore)
    try:
        vec = served.online_vectors([request], ["CUSTOMER_ID_NB_TX_1DAY_WINDOW"])
    finally:
        served.close()
    assert vec.status[0]["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == "present"


def test_online_clear_leaves_the_cache_and_the_job_queue(
    home: Path, redis_url: str, redis_prefix: str
) -> None:
    import redis

    settings = Settings(
        home=home,
        online_store=redis_url,
        cache=redis_url,
        job_queue=redis_url,
        redis_prefix=redis_prefix,
    )
    home.mkdir(parents=True, exist_ok=True)
    store = FeatureStore.open(settings)
    cache = make_cache(settings)
    queue = make_job_queue(settings)
    try:
        batch = WriteBatch("v", "x", np.array([1]), np.array([5]), np.array([1]), np.ones((1, 1)))
        store.online.write([batch], watermarks={"v:x": 5})
        cache.put_many("fraud/1", ["abc"], [0.5])
        job_id = queue.submit(JobSpec(rows=[{"transaction_id": 1, "amount": 1.0}]))
        client = redis.Redis.from_url(redis_url)
        keys = sorted(k.decode() for k in client.scan_iter(match=f"{redis_prefix}*"))
        client.close()
        for key in keys:
            assert key.startswith(
                (f"{redis_prefix}fs:", f"{redis_prefix}cache:", f"{redis_prefix}jobs:")
            ), key

        store.online.clear()

        assert store.online.read([("v", "x", 1)]) == [None]
        assert store.online.watermark("v", "x") is None
        assert cache.get_many("fraud/1", ["abc"]) == [0.5]
        assert queue.get(job_id).state.value == "queued"
    finally:
        store.close()
        cache.close()
        close = getattr(queue, "close", None)
        if close is not None:
            close()
