"""The shadow job's wire form (requests as columns, rows as one matrix) and the child's
scoring of it: every field back as the server had it, degraded and non-finite rows scored
as the server's model scores them, a malformed group reported, never raised."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import numpy as np

from mlsd.data.transaction import Transaction
from mlsd.inference.observers import ScoredBatch, ScoringRequest
from mlsd.inference.shadow_child import Requests, ShadowScorer, from_wire, to_wire
from mlsd.registry import Registry
from mlsd.serving.testing import FEATURES
from mlsd.settings import Settings


def primary(request: ScoringRequest, rows: int = 1, *, degraded: bool = False) -> ScoredBatch:
    """The primary's batch of `request` as the courier reads it (rows, degraded flag)."""
    values = request.values if request.values is not None else np.ones((rows, len(FEATURES)))
    return ScoredBatch(
        request, "v1", "primary", cast(Any, None), values, np.zeros(len(values)), [],
        np.zeros(len(values), dtype=bool), [], degraded, 0.001,
    )  # fmt: skip


def through_the_pipe(wire: Requests) -> Requests:
    """The columns as the child gets them."""
    return cast(Requests, pickle.loads(pickle.dumps(wire, protocol=pickle.HIGHEST_PROTOCOL)))


def test_requests_come_back_field_for_field() -> None:
    when = datetime(2026, 11, 20, 12, 0, 0, 123457, tzinfo=UTC)
    requests = [
        ScoringRequest("a", "score", [Transaction(1, 10, 100, 12.5, when)]),
        ScoringRequest(
            "b", "batch",
            [Transaction(2, 11, 101, 0.1, datetime(1900, 1, 1, tzinfo=UTC)),
             Transaction(3, 12, 102, 1e9, datetime(2500, 6, 30, 23, 59, 59, 999999, tzinfo=UTC))],
            row_ids=["b:2", "b:3"],
        ),
        ScoringRequest("c", "v2", values=np.full((2, len(FEATURES)), 0.5, dtype=np.float32)),
    ]  # fmt: skip
    primaries = [primary(requests[0]), primary(requests[1], 2, degraded=True),
                 primary(requests[2])]  # fmt: skip
    values = np.concatenate([p.values for p in primaries])
    back = from_wire(through_the_pipe(to_wire(requests, primaries)), values)
    assert [degraded for _, degraded in back] == [False, True, False]
    for (got, _), want in zip(back, requests, strict=True):
        assert (got.request_id, got.entry, got.row_ids) == (want.request_id, want.entry,
                                                             want.row_ids)  # fmt: skip
        assert list(got.transactions) == list(want.transactions)
        assert all(t.timestamp.tzinfo is UTC for t in got.transactions)
    assert back[0][0].values is None
    assert back[1][0].values is None
    given = back[2][0].values
    assert given is not None
    np.testing.assert_array_equal(given, values[3:5])


def test_times_in_another_zone_or_naive_go_as_they_are() -> None:
    paris = timezone(timedelta(hours=1))
    stamps = [datetime(2026, 11, 20, 13, 0, tzinfo=paris), datetime(2026, 11, 20, 12, 0)]
    requests = [ScoringRequest(f"r{i}", "score", [Transaction(i, 1, 2, 3.0, s)])
                for i, s in enumerate(stamps)]  # fmt: skip
    wire = to_wire(requests, [primary(r) for r in requests])
    assert wire[-1] == stamps, "not converted: the child logs what the server saw"
    back = from_wire(through_the_pipe(wire), np.ones((2, len(FEATURES))))
    got = [r.transactions[0].timestamp for r, _ in back]
    assert got == stamps
    assert [t.tzinfo for t in got] == [paris, None]


def test_a_malformed_group_is_reported_not_raised(settings: Settings, registry: Registry) -> None:
    scorer = ShadowScorer(settings, log_predictions=False)
    try:
        request = ScoringRequest("q", "score", [Transaction(1, 2, 3, 4.0, datetime.now(UTC))])
        wire = to_wire([request], [primary(request)])
        short = cast(Requests, (*wire[:-1], []))  # one transaction, no time
        _, (result,) = scorer.score((1, [("s1:shadow", "fraud", 2, np.ones((1, 15)), short)], []))
        _, ok, _, _, error, summaries = result
        assert ok.tolist() == [False]
        assert error is not None
        assert "malformed" in error
        assert summaries == {}
        too_many = np.ones((2, len(FEATURES)))  # two rows sent, one named
        _, (result,) = scorer.score((2, [("s1:shadow", "fraud", 2, too_many, wire)], []))
        assert result[1].tolist() == [False]
    finally:
        scorer.close()


def test_degraded_and_non_finite_rows_are_scored_as_the_server_scores_them(
    settings: Settings, registry: Registry
) -> None:
    """NaN and ±inf features cross the pipe bit for bit and score as in the server (the
    runtimes take NaN as missing); each request's degraded flag reaches the twins."""
    from mlsd.inference.host import ModelHost

    rng = np.random.default_rng(3)
    values = rng.normal(size=(4, len(FEATURES))).astype(np.float32)
    values[1, 0], values[2, 3], values[3, 5] = np.nan, np.inf, -np.inf
    requests = [ScoringRequest(f"q{i}", "v2", values=values[i : i + 1]) for i in range(4)]
    primaries = [primary(r, degraded=i % 2 == 1) for i, r in enumerate(requests)]
    group = ("s1:shadow", "fraud", 2, values, to_wire(requests, primaries))
    job = pickle.loads(pickle.dumps((5, [group], [(1, ("mlsd.inference.metrics:ShadowCounts",
                                                        ()))]), protocol=5))  # fmt: skip
    np.testing.assert_array_equal(job[1][0][3], values)  # NaN where NaN was
    expected = ModelHost(registry).load("fraud/2").predict(values)
    scorer = ShadowScorer(settings, log_predictions=False)
    try:
        seq, (result,) = scorer.score(job)
    finally:
        scorer.close()
    scores, ok, _, _, error, summaries = result
    assert seq == 5
    assert error is None
    assert ok.tolist() == [True] * 4
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-7)
    assert summaries == {1: {False: (2, 2), True: (2, 2)}}
