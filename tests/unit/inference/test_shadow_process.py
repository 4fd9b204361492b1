"""Shadows scored by the shadow scorer process: logged by it, told to the server's observers,
dropped and counted when it falls behind, and a killed child never touches the answers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from mlsd.inference.endpoint import VersionEndpoint
from mlsd.inference.observers import ScoredBatch, ScoringRequest
from mlsd.inference.routing import Variant
from mlsd.inference.shadow_process import cpu_s
from mlsd.monitoring.binning import BinnedWindow
from mlsd.monitoring.live import DriftMonitor, registry_profiles
from mlsd.predlog import make_prediction_log, open_reader
from mlsd.registry import Registry
from mlsd.registry.profile import PROFILE_ARTIFACT, build_profile, profile_bytes
from mlsd.rollout import ShadowLayer
from mlsd.rollout.testing import broken
from mlsd.serving.service import Service
from mlsd.serving.testing import FEATURES, register_tiny_model
from mlsd.settings import Settings
from tests.unit.inference.layers import Seen
from tests.unit.inference.test_shadow_child import primary
from tests.unit.rollout.conftest import transaction, wait_until
from tests.unit.serving.conftest import make_service


@pytest.fixture
def shadowed(settings: Settings, registry: Registry, store: Any) -> Iterator[Service]:
    """A logging service whose every request is shadowed by fraud/2, in a shadow process."""
    service = make_service(settings, registry, store, prediction_log=make_prediction_log(settings))
    service.pipeline.use_shadow_process(settings, service.log_observer, hung_s=30.0)
    service.host.load("fraud/2")
    endpoint = VersionEndpoint(service.host.get("fraud", version=2))
    service.pipeline.install(ShadowLayer("s1", Variant("v2", endpoint), 100.0))
    yield service
    service.close()


def score(service: Service, ids: range, *, drain: bool = True) -> None:
    async def main() -> None:
        await asyncio.gather(
            *(service.score(ScoringRequest(f"q{i}", "score", [transaction(i)])) for i in ids)
        )
        if drain:
            await service.pipeline.drain()

    asyncio.run(main())


def test_the_process_scores_and_logs_shadows_the_server_observes(
    shadowed: Service, settings: Settings
) -> None:
    seen = Seen()
    shadowed.pipeline.add_observer(seen)
    score(shadowed, range(40))
    process = shadowed.pipeline.shadow_process
    assert process is not None
    assert process.pid not in (None, os.getpid())
    model = shadowed.host.get("fraud", version=2)
    primary = {b.request.request_id: b for b in seen.batches if b.role == "primary"}
    shadows = {b.request.request_id: b for b in seen.batches if b.role == "shadow"}
    assert set(shadows) == set(primary) == {f"q{i}" for i in range(40)}
    for rid, batch in shadows.items():  # the server's observers see the child's scores
        assert (batch.variant, batch.model.version) == ("s1:shadow", 2)
        np.testing.assert_array_equal(batch.values, primary[rid].values)
        np.testing.assert_allclose(batch.scores, model.predict(batch.values), rtol=1e-6)
    assert shadowed.pipeline.shadows.depth == 0, "nothing went through the thread"
    shadowed.close()  # the child writes what it buffered
    frame = open_reader(settings).read()
    by_variant = frame.groupby("variant")["request_id"].apply(set).to_dict()
    assert by_variant == {"champion": set(primary), "s1:shadow": set(shadows)}
    logged = frame[frame["variant"] == "s1:shadow"].set_index("request_id")
    for rid, batch in shadows.items():  # one record each, written by the child
        assert logged.loc[rid, "version"] == "2"
        assert logged.loc[rid, "score"] == pytest.approx(float(batch.scores[0]), rel=1e-6)
        assert logged.loc[rid, "decision"] == batch.decisions[0]
        assert logged.loc[rid, "transaction_id"] == int(rid[1:])


def test_shadows_are_dropped_and_counted_while_the_child_is_stopped(shadowed: Service) -> None:
    process = shadowed.pipeline.shadow_process
    assert process is not None
    score(shadowed, range(3))  # the child is up
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a child that takes forever
    try:
        seen = Seen()
        shadowed.pipeline.add_observer(seen)
        for start in range(0, 3000, 100):  # batches of requests, the courier ships between
            score(shadowed, range(10 + start, 110 + start), drain=False)
        answered = [b for b in seen.batches if b.role == "primary"]
        assert len(answered) == 3000, "every request answered"
        assert process.dropped > 0
        assert process.depth <= process.capacity + process.max_in_flight * process.max_batch
        metrics = shadowed.metrics.render().decode()
        assert f'mlsd_shadow_dropped_total{{variant="s1:shadow"}} {float(process.dropped)}' in (
            metrics
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    assert process.join(30.0), "the child catches up with what it kept"
    assert process.pid == pid
    assert process.restarts == 0


def test_tensor_rows_are_scored_and_logged_by_the_child(
    shadowed: Service, settings: Settings
) -> None:
    seen = Seen()
    shadowed.pipeline.add_observer(seen)
    score(shadowed, range(2))
    rows = np.concatenate([b.values for b in seen.batches if b.role == "primary"])

    async def main() -> None:
        await shadowed.score(ScoringRequest("t1", "v2", values=rows))
        await shadowed.pipeline.drain()

    asyncio.run(main())
    shadow = [b for b in seen.batches if b.role == "shadow" and b.request.request_id == "t1"]
    assert len(shadow) == 1
    np.testing.assert_array_equal(shadow[0].values, rows)
    shadowed.close()
    frame = open_reader(settings).read()
    logged = frame[(frame["variant"] == "s1:shadow") & frame["request_id"].str.startswith("t1")]
    assert sorted(logged["request_id"]) == ["t1:0", "t1:1"]
    assert logged["endpoint"].tolist() == ["v2", "v2"]


def test_a_killed_child_never_touches_the_answers_and_is_replaced(shadowed: Service) -> None:
    process = shadowed.pipeline.shadow_process
    assert process is not None
    score(shadowed, range(3))
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    seen = Seen()
    shadowed.pipeline.add_observer(seen)
    score(shadowed, range(100, 300), drain=False)  # while it is dead, and after
    assert len([b for b in seen.batches if b.role == "primary"]) == 200
    assert wait_until(lambda: process.restarts == 1 and process.pid not in (None, pid), 60.0)
    metrics = shadowed.metrics.render().decode()
    assert "mlsd_shadow_process_restarts_total 1.0" in metrics
    score(shadowed, range(1000, 1020))  # the new child scores them
    shadows = {b.request.request_id for b in seen.batches if b.role == "shadow"}
    assert {f"q{i}" for i in range(1000, 1020)} <= shadows


def test_a_shadow_the_child_cannot_reproduce_is_scored_by_the_thread(
    settings: Settings, registry: Registry, store: Any
) -> None:
    service = make_service(settings, registry, store)
    try:
        service.pipeline.use_shadow_process(settings)
        service.host.load("fraud/2")
        wrapped = broken(service.host.get("fraud", version=2), "constant")
        service.pipeline.install(ShadowLayer("s1", Variant("v2", VersionEndpoint(wrapped)), 100.0))
        seen = Seen()
        service.pipeline.add_observer(seen)
        score(service, range(20))
        shadows = [b for b in seen.batches if b.role == "shadow"]
        assert len(shadows) == 20
        assert all(float(b.scores[0]) == 0.02 for b in shadows), "the wrapped runtime scored"
        assert service.pipeline.shadows.dropped == 0
    finally:
        service.close()


class Watched(DriftMonitor):
    """A drift monitor noting the role of every batch it is told of."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.roles: list[str] = []

    def observe(self, batch: ScoredBatch) -> None:
        self.roles.append(batch.role)
        super().observe(batch)


def test_metrics_and_drift_of_shadows_are_summed_up_by_the_child(
    settings: Settings, registry: Registry, store: Any, artifacts: dict[int, dict[str, bytes]]
) -> None:
    """Live drift and the metrics get one summary per job from their twins in the child (not
    a batch per shadow), and count what they would have counted from the rows."""
    values = np.random.default_rng(3).normal(size=(2000, len(FEATURES)))
    profile = build_profile(values, list(FEATURES), scores=np.linspace(0.0, 1.0, 2000))
    files = {**artifacts[2], PROFILE_ARTIFACT: profile_bytes(profile)}
    register_tiny_model(registry, files, store.view_versions())  # fraud/3, profiled
    service = make_service(settings, registry, store)
    try:
        drift = Watched(registry_profiles(registry), window_rows=60, score_alarm_rate=1e-3)
        service.pipeline.add_observer(drift)
        service.pipeline.use_shadow_process(settings)
        service.host.load("fraud/3")
        endpoint = VersionEndpoint(service.host.get("fraud", version=3))
        service.pipeline.install(ShadowLayer("s1", Variant("v3", endpoint), 100.0))
        seen = Seen()
        service.pipeline.add_observer(seen)  # no twin: told of each shadow
        score(service, range(60))
        shadows = [b for b in seen.batches if b.role == "shadow"]
        assert len(shadows) == 60
        assert "shadow" not in drift.roles, "the monitor got summaries, no shadow batch"
        (report,) = drift.drain()
        assert (report.model, report.version, report.n_rows) == ("fraud", 3, 60)
        rows = np.concatenate([b.values for b in shadows])
        scores = np.concatenate([b.scores for b in shadows])
        expected = BinnedWindow(profile).add(rows, scores).score_counts
        assert expected is not None
        key = ("fraud", 3, "s1:shadow")
        assert drift.history()[key][0].score_counts == tuple(expected.tolist())
        alone = DriftMonitor(lambda n, v: profile, score_alarm_rate=1e-3)
        assert drift.score_alarms[key] == alone.detect(key, profile, scores)
        labels = {"model": "fraud", "version": "3", "variant": "s1:shadow", "role": "shadow",
                  "status": "ok"}  # fmt: skip
        for metric in ("mlsd_predictions_total", "mlsd_model_requests_total"):
            assert service.metrics.registry.get_sample_value(metric, labels) == 60.0
    finally:
        service.close()


def test_a_twin_that_cannot_be_built_leaves_its_observer_told_of_each_shadow(
    settings: Settings, registry: Registry
) -> None:
    """In the child: a twin it cannot build gives no summary (the server then tells its
    observer of each shadow), the others sum the job up; twins no longer named are dropped."""
    from mlsd.inference.shadow_child import ShadowScorer, Twins, to_wire

    scorer = ShadowScorer(settings, log_predictions=False)
    try:
        values = np.random.default_rng(1).normal(size=(3, len(FEATURES))).astype(np.float32)
        requests = [ScoringRequest(f"q{i}", "v2", values=values[i : i + 1]) for i in range(3)]
        primaries = [primary(r, degraded=i == 1) for i, r in enumerate(requests)]
        group = ("s1:shadow", "fraud", 2, values, to_wire(requests, primaries))
        twins: Twins = [
            (1, ("mlsd.inference.metrics:ShadowCounts", ())),
            (2, ("mlsd.nowhere:Twin", ())),
        ]
        seq, (result,) = scorer.score((7, [group], twins))
        assert seq == 7
        scores, ok, *_, summaries = result
        assert len(scores) == 3
        assert ok.tolist() == [True, True, True]
        assert summaries == {1: {False: (2, 2), True: (1, 1)}}, "no summary from twin 2"
        scorer.score((8, [group], [(1, None)]))  # named again: built once
        assert list(scorer.twins) == [1]
        scorer.score((9, [group], []))
        assert scorer.twins == {}
    finally:
        scorer.close()


def test_the_courier_waits_for_an_answer_without_spinning(shadowed: Service) -> None:
    """A job out longer than the linger: the courier sleeps on the pipe until the answer, it
    does not poll it in a loop (it did, a core's worth, and starved the idle-class child
    it waited for on a busy machine: 0 of 60 shadows in 60 s, 2026-12-03)."""
    process = shadowed.pipeline.shadow_process
    assert process is not None
    score(shadowed, range(3))
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the next job stays out (hung_s is 30 s)
    try:
        score(shadowed, range(10, 20), drain=False)
        assert wait_until(lambda: process.in_flight == 10, 10.0)
        cpu, started = time.process_time(), time.monotonic()
        time.sleep(1.0)
        used, took = time.process_time() - cpu, time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    score(shadowed, range(30, 31))
    assert process.restarts == 0
    assert process.dropped == 0
    assert used < 0.2 * took, f"{used:.2f} s of CPU in {took:.2f} s while waiting"


HUNG_S = 0.2


@pytest.fixture
def impatient(settings: Settings, registry: Registry, store: Any) -> Iterator[Service]:
    """As `shadowed`, with a child given a fifth of a second to answer a job."""
    service = make_service(settings, registry, store)
    service.pipeline.use_shadow_process(settings, hung_s=HUNG_S)
    service.host.load("fraud/2")
    endpoint = VersionEndpoint(service.host.get("fraud", version=2))
    service.pipeline.install(ShadowLayer("s1", Variant("v2", endpoint), 100.0))
    yield service
    service.close()


def test_a_child_that_answers_nothing_for_hung_s_is_killed_and_replaced(
    impatient: Service,
) -> None:
    process = impatient.pipeline.shadow_process
    assert process is not None
    score(impatient, range(3))
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # stopped: it does not wait for a CPU, it is hung
    score(impatient, range(10, 20), drain=False)
    assert wait_until(lambda: process.restarts == 1 and process.pid not in (None, pid), 60.0)
    assert process.dropped >= 10, "the hung child's shadows are lost, and counted"


@pytest.mark.skipif(
    cpu_s(os.getpid()) is None or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux's schedstat and two CPUs",
)
def test_a_starved_child_is_waited_for_not_killed(impatient: Service) -> None:
    """The idle-class child beside four busy processes on its one CPU gets next to none of
    it: its job takes longer than `hung_s` (0.7-4.4 s against 0.2, 2026-12-02), nearly all
    of it runnable, waiting for the CPU."""
    process = impatient.pipeline.shadow_process
    assert process is not None
    score(impatient, range(3))
    pid = process.pid
    assert pid is not None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(pid, {cpu})
    spin = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(4)]
    try:
        before = cpu_s(pid)
        assert before is not None
        seen = Seen()
        impatient.pipeline.add_observer(seen)
        started = time.monotonic()
        score(impatient, range(100, 350))  # one job (fewer than max_batch); waits for it
        took = time.monotonic() - started
        after = cpu_s(pid)
        assert after is not None
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert process.restarts == 0
    assert process.pid == pid
    assert process.dropped == 0
    assert len([b for b in seen.batches if b.role == "shadow"]) == 250
    assert took > HUNG_S, "the job was out longer than hung_s (the test holds)"
    assert after[1] - before[1] < took, "it had little CPU"
