"""The demo's traffic driver: a transaction is sent only after its feature rows were pushed,
and never while an earlier one of its customer or terminal is still in flight."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlsd.errors import UnavailableError
from mlsd.serving.demo import _Traffic, request_bodies


def _frame(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2018-07-10", tz="UTC")
    return pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(1000, 1000 + n),
            "TX_DATETIME": start + pd.to_timedelta(np.sort(rng.integers(0, 86_400, n)), "s"),
            "CUSTOMER_ID": rng.integers(0, 12, n),  # few entities: many conflicts
            "TERMINAL_ID": rng.integers(0, 20, n),
            "TX_AMOUNT": rng.gamma(2.0, 30.0, n).round(2),
        }
    )


class _Recorder(_Traffic):
    """Scores nothing over HTTP: checks the invariants where a request would be posted."""

    def __init__(self, frame: pd.DataFrame, **kwargs: Any) -> None:
        self.pushed: set[int] = set()
        self.order: list[int] = []
        self.flying: dict[int, tuple[int, int]] = {}
        self.guard = threading.Lock()
        self.violations: list[str] = []
        self.rng = np.random.default_rng(0)
        super().__init__("http://127.0.0.1:9", frame, {}, self._push, None, **kwargs)
        self.index = {int(b["transaction_id"]): i for i, b in enumerate(self.bodies)}

    def _push(self, lo: int, hi: int) -> None:
        with self.guard:
            self.pushed.update(range(lo, hi))

    def _post(self, http: Any, body: dict[str, Any]) -> None:
        i = self.index[int(body["transaction_id"])]
        key = (int(body["customer_id"]), int(body["terminal_id"]))
        with self.guard:
            if i not in self.pushed:
                self.violations.append(f"{i} sent before its rows were pushed")
            for j, (c, t) in self.flying.items():
                if c == key[0] or t == key[1]:
                    self.violations.append(f"{i} sent while {j} (same entity) in flight")
            self.flying[i] = key
            self.order.append(i)
            pause = float(self.rng.uniform(0, 0.002))
        time.sleep(pause)
        with self.guard:
            del self.flying[i]
        with self.lock:
            self.latencies.append(pause)
            self.all_present += 1


def test_every_transaction_is_sent_once_after_its_push_and_alone_for_its_entities() -> None:
    frame = _frame(400)
    traffic = _Recorder(frame)
    traffic.start(4)
    assert traffic.done.wait(30)
    traffic.join()
    assert traffic.violations == []
    assert sorted(traffic.order) == list(range(len(frame)))
    # an entity's transactions go in time order
    for column in ("CUSTOMER_ID", "TERMINAL_ID"):
        for _, rows in frame.groupby(column):
            positions = [traffic.order.index(i) for i in rows.index]
            assert positions == sorted(positions)
    figures = traffic.figures("u", 1.0, "m", "")
    assert figures.replayed == figures.replay_total == len(frame)
    assert figures.replayed_until == frame["TX_DATETIME"].iloc[-1].isoformat()


def test_a_failing_push_stops_the_replay_and_is_raised() -> None:
    class Failing(_Recorder):
        def _push(self, lo: int, hi: int) -> None:
            raise UnavailableError("online store down")

    traffic = Failing(_frame(20))
    traffic.start(2)
    assert traffic.done.wait(10)
    with pytest.raises(UnavailableError, match="online store down"):
        traffic.join()
    assert traffic.order == []


def test_request_bodies_keep_each_transactions_own_ids_and_time() -> None:
    frame = _frame(3)
    bodies = request_bodies(frame)
    assert [b["transaction_id"] for b in bodies] == frame["TRANSACTION_ID"].tolist()
    assert bodies[0]["timestamp"].startswith("2018-07-10T")
    assert bodies[0]["timestamp"].endswith("Z")
    assert pd.Timestamp(bodies[0]["timestamp"]) == frame["TX_DATETIME"].iloc[0]


def test_a_speedup_paces_the_replay_on_the_transactions_own_times() -> None:
    frame = _frame(100)
    span = (frame["TX_DATETIME"].iloc[-1] - frame["TX_DATETIME"].iloc[0]).total_seconds()
    speedup = span / 0.6  # the whole replay should take about 0.6 s
    traffic = _Recorder(frame)
    traffic.speedup = speedup
    started = time.monotonic()
    traffic.start(2)
    assert traffic.done.wait(30)
    elapsed = time.monotonic() - started
    traffic.join()
    assert traffic.violations == []
    assert sorted(traffic.order) == list(range(len(frame)))
    assert elapsed >= 0.55  # never ahead of the replayed clock (slower is allowed)
