"""kill -9 of `mlsd stream run` (window features on, the default) mid-day, then a restart,
on the embedded log: the restarted processor rebuilds its window state (history up to
the store's watermark, then the topic's decided events) and every payment's logged model
inputs, re-delivered ones included, are `get_training_set`'s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import schema
from mlsd.data.config import SimulatorConfig
from mlsd.lab.replay_world import day_start, make_world
from mlsd.predlog import make_prediction_log
from mlsd.registry import Registry
from mlsd.serving.testing import FEATURES, register_tiny_model, tiny_model_artifacts
from mlsd.settings import Settings
from mlsd.streaming import open_event_log
from mlsd.streaming.batch import batch_features, to_transactions
from mlsd.streaming.codec import transaction_record

from .test_processor_kill import CLI, decided_count

DAY = 9


@pytest.mark.slow
def test_kill_9_then_restart_gives_every_payment_the_training_sets_inputs(tmp_path: Path) -> None:
    world = make_world(tmp_path, SimulatorConfig.scaled(2500, 5000, n_days=DAY + 1, seed=7))
    settings = Settings(home=tmp_path / "home", prediction_log_flush_seconds=0.05)
    try:
        registry = Registry.open(settings)
        register_tiny_model(registry, tiny_model_artifacts(1), world.store.view_versions())
        registry.set_alias("fraud", "champion", 1, reason="test", actor="test")
        registry.close()
        world.store.materialize(end=day_start(world.day(DAY)))
        tx = world.transactions
        start = pd.Timestamp(world.day(DAY), tz="UTC")
        end = start + pd.Timedelta(days=1)
        day = tx[(tx[schema.TX_DATETIME] >= start) & (tx[schema.TX_DATETIME] < end)]
        day = day.sort_values([schema.TX_DATETIME, schema.TRANSACTION_ID]).reset_index(drop=True)
        expected = batch_features(world.store, day, tuple(FEATURES))
    finally:
        world.close()
    events = len(day)
    assert events > 3000
    log = open_event_log(settings)
    log.create_topic("transactions", 3)
    log.publish("transactions", [transaction_record(t) for t in to_transactions(day)])
    env = {**os.environ, "MLSD_HOME": str(settings.home),
           "MLSD_PREDICTION_LOG_FLUSH_SECONDS": "0.05"}  # fmt: skip
    args = [sys.executable, "-c", CLI, "stream", "run", "--batch", "8", "--session-timeout", "1"]

    first_out = tmp_path / "first.out"
    with first_out.open("wb") as out_file:
        first = subprocess.Popen([*args, "--idle-exit", "60"], env=env, stdout=out_file)
    deadline = time.monotonic() + 90
    while decided_count(log) < events // 5:
        assert first.poll() is None, f"the processor exited with {first.returncode}"
        assert time.monotonic() < deadline, "no decisions within 90 s"
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert decided_count(log) < events, "the processor finished before the kill"

    second = subprocess.Popen([*args, "--idle-exit", "3"], env=env, stdout=subprocess.PIPE)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0
    assert b"window features: state rebuilt" in out
    log.close()

    predictions = make_prediction_log(settings)
    try:
        frame = predictions.read()
    finally:
        predictions.close()
    frame = frame[frame["endpoint"] == "stream"]
    assert set(frame["transaction_id"]) == set(day[schema.TRANSACTION_ID])
    vectors = frame.assign(v=[tuple(r[f] for f in FEATURES) for r in frame["features"]])
    per_id = vectors.groupby("transaction_id")["v"].nunique()
    assert (per_id == 1).all(), "a re-delivered payment met another state"
    last = vectors.drop_duplicates("transaction_id", keep="last").set_index("transaction_id")
    served = np.array(last.loc[day[schema.TRANSACTION_ID], "v"].tolist(), np.float32)
    close = np.isclose(served, expected, rtol=1e-6, atol=1e-6).all(axis=1)
    assert close.all(), _differences(day, frame, served, expected, close, first_out, out)
    # (whether the kill left decided, uncommitted batches to re-deliver is timing: the
    # committed fifth before it must come from the rebuild either way)


def _differences(
    day: pd.DataFrame,
    frame: pd.DataFrame,
    served: np.ndarray,
    expected: np.ndarray,
    close: np.ndarray,
    first_out: Path,
    second_out: bytes,
) -> str:
    """What a failure needs to be understood: the rows that differ (id, customer, time,
    how often logged, which features and by how much) and both processes' reports."""
    logged = frame.groupby("transaction_id").size()
    lines = [f"{(~close).sum()} of {len(day)} rows differ from the training set"]
    for i in np.flatnonzero(~close)[:20].tolist():
        row = day.iloc[i]
        ident = row[schema.TRANSACTION_ID]
        off = [
            f"{f}: served {served[i, j]:.6g}, expected {expected[i, j]:.6g}"
            for j, f in enumerate(FEATURES)
            if not np.isclose(served[i, j], expected[i, j], rtol=1e-6, atol=1e-6)
        ]
        lines.append(
            f"  tx {ident} customer {row[schema.CUSTOMER_ID]} at {row[schema.TX_DATETIME]} "
            f"logged {int(logged.get(ident, 0))}x: {'; '.join(off)}"
        )
    lines.append(f"first run: {first_out.read_text(errors='replace').strip()}")
    lines.append(f"second run: {second_out.decode(errors='replace').strip()}")
    return "\n".join(lines)
