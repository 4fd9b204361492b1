"""A 2 s Redis stall under load, with the online store and the prediction cache both on
Redis (through the tests' proxy): answers keep coming fast, degraded and flagged, full
service is back within 1 s, and no answered prediction is missing from the log.

The machine running the suite may be loaded (2 cores, many processes): a process
preempted for 200 ms shows as a 200 ms blip in any window. So the scenario runs up to
three times and the bar must hold in one run; an implementation that waits on the
stalled Redis (a 1 s socket timeout, or the whole stall, as before the fix: p99 1.9 s)
fails every run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlsd.features.store import FeatureStore
from mlsd.inference.batcher import BatchConfig
from mlsd.inference.cache import make_cache
from mlsd.inference.host import ModelHost
from mlsd.predlog import make_prediction_log
from mlsd.registry import Registry
from mlsd.serving.app import create_app
from mlsd.serving.server import BackgroundServer
from mlsd.serving.service import ServeOptions, Service
from mlsd.serving.testing import register_tiny_model, seed_feature_store
from mlsd.settings import Settings
from tests.faults.load import Answer, open_loop, p99_ms
from tests.faults.proxy import FaultProxy

pytestmark = [pytest.mark.redis, pytest.mark.faults]

RATE = 100.0  # requests per second
STALL_AT, STALL_S, AFTER_S = 1.0, 2.0, 2.0
RUNS = 3


@dataclass(frozen=True)
class Run:
    """One pass of the scenario and what it measured."""

    answers: list[Answer]
    stall: float
    resume: float

    def window(self, start: float, end: float) -> list[Answer]:
        return [a for a in self.answers if start <= a.due < end]

    @property
    def during(self) -> list[Answer]:
        return self.window(self.stall, self.resume)

    @property
    def healed_s(self) -> float:
        """Seconds from the stall's end to the first answer not degraded."""
        return next(a.due for a in self.answers if a.due >= self.resume and not a.degraded) - (
            self.resume
        )

    def problems(self) -> list[str]:
        """What misses the bar in this run (empty: it holds)."""
        out = []
        failed = [a for a in self.answers if a.status != 200]
        if failed:
            out.append(f"{len(failed)} requests not answered 200")
        if p99_ms(self.during) > 50.0:
            out.append(f"p99 {p99_ms(self.during):.1f} ms during the stall")
        settled = self.window(self.stall + 0.2, self.resume)
        if not all(a.degraded for a in settled):
            out.append(f"{sum(not a.degraded for a in settled)} answers in the stall unflagged")
        if self.healed_s > 1.0:
            out.append(f"still degraded {self.healed_s:.2f} s after the stall")
        for name, part in (
            ("before", self.window(0.0, self.stall)),
            ("after", self.window(self.resume + 1.0, float("inf"))),
        ):
            if sum(bool(a.degraded) for a in part) > 0.1 * len(part):
                out.append(f"degraded answers {name} the stall")
        return out


def _scenario(url: str, proxy: FaultProxy, tag: str) -> Run:
    marks: dict[str, float] = {}

    def fault(t: float) -> None:
        if t >= STALL_AT and "stall" not in marks:
            proxy.stall()
            marks["stall"] = time.monotonic()
        elif t >= STALL_AT + STALL_S and "resume" not in marks:
            proxy.resume()
            marks["resume"] = time.monotonic()

    try:
        answers = open_loop(url, RATE, STALL_AT + STALL_S + AFTER_S, fault, tag=tag)
    finally:
        proxy.resume()
    return Run(answers, marks["stall"], marks["resume"])


def test_a_2s_redis_stall_costs_no_latency_and_heals_within_1s(
    home: Path, redis_url: str, redis_prefix: str, redis_proxy: FaultProxy,
    artifacts: dict[int, dict[str, bytes]],
) -> None:  # fmt: skip
    through = redis_proxy.url(redis_url)
    settings = Settings(home=home, online_store=through, cache=through, redis_prefix=redis_prefix)
    store = FeatureStore.open(settings)
    views = seed_feature_store(store)
    registry = Registry.open(settings)
    register_tiny_model(registry, artifacts[1], views)
    registry.set_alias("fraud", "champion", 1, reason="test", actor="test")
    service = Service(
        settings,
        ModelHost(registry, served_views=store.view_versions),
        options=ServeOptions(
            watch_aliases=False, batching=BatchConfig(32, 0.0), tune_process=True
        ),  # as `mlsd serve`: without the GC tuning a full collection stalls the process
        features=store,
        cache=make_cache(settings),
        prediction_log=make_prediction_log(settings),
    )
    service.owned = [registry, store]
    service.load_all()
    runs: list[Run] = []
    server = BackgroundServer(create_app(settings, service=service)).start()
    try:
        for attempt in range(RUNS):
            runs.append(_scenario(server.url, redis_proxy, f"run{attempt}"))
            if not runs[-1].problems():
                break
    finally:
        server.stop()  # closes the service: the log flushes
    report = [
        f"p99 {p99_ms(r.during):.1f} ms during, healed {r.healed_s:.2f} s after: "
        + ("; ".join(r.problems()) or "ok")
        for r in runs
    ]
    print("redis stall:", " | ".join(report))
    assert not runs[-1].problems(), report
    # 0 rows lost: every answered request of every run is in the log, once
    logged = make_prediction_log(Settings(home=home)).read()
    ids = logged["request_id"]
    assert ids.is_unique
    answered = {a.request_id for r in runs for a in r.answers if a.status == 200}
    missing = answered - set(ids)
    assert not missing, f"{len(missing)} answered predictions not logged"
