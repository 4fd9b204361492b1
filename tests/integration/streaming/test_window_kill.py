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


def _day_on_the_log(tmp_path: Path) -> tuple[Settings, pd.DataFrame, np.ndarray]:
    """A world materialized up to day DAY, the tiny model as fraud@champion, and that
    day's payments published on the embedded log (3 partitions); the settings, the day's
    payments in event-time order and their training-set inputs."""
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
    assert len(day) > 3000
    log = open_event_log(settings)
    try:
        log.create_topic("transactions", 3)
        log.publish("transactions", [transaction_record(t) for t in to_transactions(day)])
    finally:
        log.close()
    return settings, day, expected


def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "MLSD_HOME": str(settings.home),
            "MLSD_PREDICTION_LOG_FLUSH_SECONDS": "0.05"}  # fmt: skip


ARGS = ("stream", "run", "--batch", "8", "--session-timeout", "1")


@pytest.mark.slow
def test_kill_9_then_restart_gives_every_payment_the_training_sets_inputs(tmp_path: Path) -> None:
    settings, day, expected = _day_on_the_log(tmp_path)
    events = len(day)
    log = open_event_log(settings)
    env = _env(settings)
    args = [sys.executable, "-c", CLI, *ARGS]

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

    _check(settings, day, expected, first_out, out)
    # (whether the kill left decided, uncommitted batches to re-deliver is timing: the
    # committed fifth before it must come from the rebuild either way; the test below
    # kills at a chosen point of the commit)


#: `mlsd stream run` that kills itself with SIGKILL inside the commit that follows `after`
#: committed groups of batches, once its decisions are published: the records of the
#: group's first 4 batches stored (as a flush on the flusher's own timer would store them),
#: those of the last 4 still in the prediction log's buffer, the flusher not woken.
KILLER = """
import os, signal, sys
from mlsd.predlog.base import BufferedLog
from mlsd.streaming.log_sqlite import SqliteConsumer
from mlsd.streaming.processor import StreamProcessor
after = int(sys.argv.pop(1))
commits = 0
real_wait, real_commit, real_step = (
    BufferedLog.wait_durable, SqliteConsumer.commit, StreamProcessor.step
)

def step(self):
    n = real_step(self)
    if commits >= after and len(self._uncommitted) == 4:
        assert real_wait(self._sink.predictions, self._sink.last_seq, 30.0)
    return n

def wait_durable(self, seq, timeout):
    if commits >= after:
        if timeout == 0.0:
            return False
        os.kill(os.getpid(), signal.SIGKILL)
    return real_wait(self, seq, timeout)

def commit(self, events):
    global commits
    commits += 1
    return real_commit(self, events)

BufferedLog.wait_durable = wait_durable
SqliteConsumer.commit = commit
StreamProcessor.step = step
from mlsd.cli.main import run
run()
"""
GROUPS = 5  # committed groups before the kill (8 batches of 8: 320 payments)


@pytest.mark.slow
def test_a_kill_in_the_commit_with_half_its_records_stored_gives_the_training_sets_inputs(
    tmp_path: Path,
) -> None:
    """No timing: the processor kills itself in the commit after GROUPS committed groups,
    with the records of the group's first 4 batches stored (decided and delivered again:
    the held-back path) and the last 4 lost from the buffer (delivered again, never
    decided). (Killed with all of them lost, or all stored, it passed too; this one kill
    covers both paths in the time of one.)"""
    settings, day, expected = _day_on_the_log(tmp_path)
    first_out = tmp_path / "first.out"
    with first_out.open("wb") as out_file:
        first = subprocess.run(
            [sys.executable, "-c", KILLER, str(GROUPS), *ARGS, "--idle-exit", "60"],
            env={**_env(settings), "MLSD_PREDICTION_LOG_FLUSH_SECONDS": "3600"},  # by commits only
            stdout=out_file, timeout=300, check=False,
        )  # fmt: skip
    assert first.returncode == -signal.SIGKILL, f"the processor exited with {first.returncode}"
    second = subprocess.run(
        [sys.executable, "-c", CLI, *ARGS, "--idle-exit", "3"],
        env=_env(settings), stdout=subprocess.PIPE, timeout=300, check=False,
    )  # fmt: skip
    assert second.returncode == 0
    committed = GROUPS * 8 * 8
    again = 4 * 8  # the stored half of the killed group: decided, delivered, logged twice
    assert f"and {committed + again} decided events".encode() in second.stdout, second.stdout
    frame = _check(settings, day, expected, first_out, second.stdout)
    twice = int((frame.groupby("transaction_id").size() > 1).sum())
    assert twice == again, twice


def _check(
    settings: Settings,
    day: pd.DataFrame,
    expected: np.ndarray,
    first_out: Path,
    second_out: bytes,
) -> pd.DataFrame:
    """Every payment of the day logged, the same inputs at each delivery, the last one the
    training set's; the stream's log records."""
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
    assert close.all(), _differences(day, frame, served, expected, close, first_out, second_out)
    return frame


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
        mine = day[(day[schema.CUSTOMER_ID] == row[schema.CUSTOMER_ID]) & (day.index < i)]
        before = [
            f"{t} at {w.time()} logged {int(logged.get(t, 0))}x"
            for t, w in zip(mine[schema.TRANSACTION_ID], mine[schema.TX_DATETIME], strict=True)
        ]
        lines.append(f"    its customer's payments before it that day: {', '.join(before)}")
    lines.append(f"first run: {first_out.read_text(errors='replace').strip()}")
    lines.append(f"second run: {second_out.decode(errors='replace').strip()}")
    return "\n".join(lines)
