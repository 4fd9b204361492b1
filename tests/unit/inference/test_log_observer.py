"""The prediction log observer: one block per batch off the loop, one append per loop tick on it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pytest

from mlsd.data.transaction import Transaction
from mlsd.errors import UnavailableError
from mlsd.inference.log_observer import PredictionLogObserver
from mlsd.inference.observers import ScoredBatch, ScoringRequest, TickObserver
from mlsd.inference.pipeline import ScoringPipeline
from mlsd.inference.spec import LoadedModel, ServingSpec
from mlsd.predlog.block import RecordBlock
from mlsd.predlog.record import PredictionRecord

NAMES = ("a", "b", "c")
WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class FixedRuntime:
    name = "fixed"
    n_features = 3

    def predict(self, values: np.ndarray) -> np.ndarray:
        return np.full(len(values), 0.25)


MODEL = LoadedModel("fraud", 3, ServingSpec("fixed", NAMES, threshold=0.5), FixedRuntime())


class Sink:
    """Keeps what each append got; `down` makes every append fail."""

    def __init__(self, down: bool = False) -> None:
        self.appends: list[Sequence[PredictionRecord]] = []
        self.down = down

    def append(self, records: Sequence[PredictionRecord]) -> int:
        if self.down:
            raise UnavailableError("the log is down")
        self.appends.append(records)
        return len(records)


def _batch(i: int, rows: int = 1, latency_s: float = 0.001) -> ScoredBatch:
    txs = [Transaction(100 * i + j, 7, 9, 10.0 + j, WHEN) for j in range(rows)]
    values = np.arange(rows * len(NAMES), dtype=np.float32).reshape(rows, len(NAMES)) + i
    request = ScoringRequest(f"r{i}", "score", txs)
    return ScoredBatch(
        request, "champion", "primary", MODEL, values, np.full(rows, 0.1 * i),
        ["legit"] * rows, np.zeros(rows, dtype=bool), [], False, latency_s,
    )  # fmt: skip


def test_a_batch_is_one_block_whose_records_are_the_rows() -> None:
    sink = Sink()
    PredictionLogObserver(sink).observe(_batch(1, rows=2))
    (block,) = sink.appends
    assert isinstance(block, RecordBlock)
    records = list(block)
    assert [r.request_id for r in records] == ["r1:100", "r1:101"]
    assert [r.features for r in records] == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert [r.transaction_id for r in records] == [100, 101]
    assert {(r.model, r.version, r.threshold, r.endpoint, r.variant) for r in records} == {
        ("fraud", "3", 0.5, "score", "champion")
    }
    assert all(r.tx_time == WHEN and r.latency_ms == 1.0 for r in records)


def test_the_batches_of_one_loop_tick_are_one_append_awaited_before_the_answer() -> None:
    sink = Sink()
    observer = PredictionLogObserver(sink)
    assert isinstance(observer, TickObserver)

    async def tick() -> None:
        waits = [observer.observe_soon(_batch(i, latency_s=i / 1000)) for i in range(1, 4)]
        assert sink.appends == []  # nothing appended before the tick ends
        for wait in waits:
            await wait
        assert len(sink.appends) == 1  # done: every batch's records are in the sink
        later = observer.observe_soon(_batch(4))  # the next tick: an append of its own
        await later

    asyncio.run(tick())
    first, second = sink.appends
    assert [r.request_id for r in first] == ["r1", "r2", "r3"]
    assert [r.latency_ms for r in first] == [1.0, 2.0, 3.0]
    assert [r.score for r in first] == pytest.approx([0.1, 0.2, 0.3])
    assert [r.request_id for r in second] == ["r4"]


def test_a_failed_append_fails_every_request_of_its_tick() -> None:
    observer = PredictionLogObserver(Sink(down=True))

    async def tick() -> list[BaseException | None]:
        waits = [observer.observe_soon(_batch(i)) for i in range(3)]
        return list(await asyncio.gather(*waits, return_exceptions=True))

    assert all(isinstance(r, UnavailableError) for r in asyncio.run(tick()))


def test_a_rerun_logs_only_the_rows_not_logged_before() -> None:
    sink = Sink()
    batch = _batch(1, rows=2)
    batch.request.logged = {("r1:100", "champion")}
    PredictionLogObserver(sink).observe(batch)
    assert [[r.request_id for r in a] for a in sink.appends] == [["r1:101"]]


def test_the_pipeline_awaits_the_tick_and_a_down_log_fails_the_request() -> None:
    from mlsd.inference.assemble import FeatureAssembler
    from mlsd.inference.endpoint import VersionEndpoint
    from mlsd.inference.metrics import ServingMetrics
    from mlsd.inference.routing import Variant

    metrics = ServingMetrics()
    pipeline = ScoringPipeline(FeatureAssembler(None, metrics), metrics)
    pipeline.add_endpoint("fraud", Variant("champion", VersionEndpoint(MODEL, metrics)))
    sink = Sink()
    pipeline.add_observer(PredictionLogObserver(sink), critical=True)
    rows = np.zeros((1, len(NAMES)), dtype=np.float32)

    async def score(n: int) -> None:
        requests = [ScoringRequest(f"v{i}", "v2", values=rows) for i in range(n)]
        await asyncio.gather(*(pipeline.score(r) for r in requests))

    asyncio.run(score(5))
    assert sorted(r.request_id for a in sink.appends for r in a) == [f"v{i}" for i in range(5)]
    sink.down = True
    with pytest.raises(UnavailableError):
        asyncio.run(score(1))
