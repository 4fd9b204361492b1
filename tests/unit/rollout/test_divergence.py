"""Divergence analysis on pairs from the real pipeline's log records, and the
dangerous-divergence rule on pairs of known rates."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlsd.data.transaction import Transaction
from mlsd.errors import NotFoundError, ValidationError
from mlsd.inference.endpoint import VersionEndpoint
from mlsd.inference.log_observer import PredictionLogObserver
from mlsd.inference.observers import ScoringRequest
from mlsd.inference.routing import Variant
from mlsd.predlog.record import PredictionRecord, finish_frame, to_table
from mlsd.rollout import ShadowLayer
from mlsd.rollout.divergence import EVENT, DangerousDivergence, analyse
from mlsd.rollout.pairs import pairs
from mlsd.serving.service import Service

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class Sink:
    def __init__(self) -> None:
        self.records: list[PredictionRecord] = []

    def append(self, records: list[PredictionRecord]) -> None:
        self.records.extend(records)


def _logged(service: Service, version: int, n: int = 120) -> pd.DataFrame:
    """A log read after `n` requests through the pipeline with a 100 % shadow of `version`."""
    service.host.load(f"fraud/{version}")
    shadow = Variant("v", VersionEndpoint(service.host.get("fraud", version=version)))
    service.pipeline.install(ShadowLayer("s1", shadow, 100.0))
    sink = Sink()
    service.pipeline.add_observer(PredictionLogObserver(sink), critical=True)
    rng = np.random.default_rng(0)

    async def main() -> None:
        for i in range(n):
            amount = float(rng.gamma(2.0, 60.0))
            tx = Transaction(i, 1 + i % 2, 7, round(amount, 2), T0 + timedelta(seconds=i))
            await service.score(ScoringRequest(f"q{i}", "score", [tx]))
        await service.pipeline.drain()

    asyncio.run(main())
    return finish_frame(to_table(sink.records).to_pandas())


def test_pairs_join_the_champion_and_its_shadow_by_request(service: Service) -> None:
    frame = _logged(service, version=2)
    found = pairs(frame)
    assert len(found) == 120
    assert set(found["champion_version"]) == {"1"}
    assert set(found["challenger_version"]) == {"2"}
    assert found["ts"].is_monotonic_increasing
    assert set(found["customer"]) <= {"new", "known"}
    assert set(found["amount_band"]) <= {"<20 €", "20-100 €", "100-220 €", ">=220 €"}
    report = analyse(found)
    assert report.pairs == 120
    assert 0.0 <= report.disagreement.low <= report.disagreement.estimate
    assert {s.segment for s in report.segments} == {"amount_band", "customer", "terminal_risk"}
    assert sum(s.pairs for s in report.segments if s.segment == "amount_band") == 120


def test_a_shadow_of_the_champion_itself_agrees_everywhere(service: Service) -> None:
    frame = _logged(service, version=1)
    report = analyse(pairs(frame))
    assert report.disagreement.estimate == 0.0
    assert report.ks_statistic == 0.0
    assert report.alert is None


def test_no_shadow_in_the_log_is_a_clear_error(service: Service) -> None:
    frame = _logged(service, version=2)
    with pytest.raises(NotFoundError, match="rollout 'other'"):
        pairs(frame, rollout="other")
    with pytest.raises(NotFoundError, match="no shadow records"):
        pairs(frame[~frame["variant"].str.endswith(":shadow")])


def _pairs(n: int, block_rate: float, approve_rate: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    champion = rng.random(n) < block_rate
    challenger = champion & (rng.random(n) >= approve_rate)
    return pd.DataFrame(
        {
            "rollout": "s1",
            "ts": pd.date_range(T0, periods=n, freq="s"),
            "champion_decision": np.where(champion, "fraud", "legit"),
            "challenger_decision": np.where(challenger, "fraud", "legit"),
        }
    )


def test_the_rule_fires_on_a_dangerous_challenger_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rule = DangerousDivergence(max_rate=0.1, alpha=0.01)
    with caplog.at_level(logging.WARNING, logger="mlsd.rollout.divergence"):
        alert = rule.check(_pairs(20_000, 0.02, 0.4, seed=1))
    assert alert is not None
    assert alert.stop_rollout
    assert alert.event == EVENT
    assert alert.rate.estimate > 0.1
    assert alert.p_value <= 0.01
    assert alert.blocks < 200, "a 40 % approval rate is found within a few dozen blocks"
    assert any(r.getMessage().startswith(EVENT) for r in caplog.records)


def test_the_rule_is_quiet_below_the_limit_and_looks_do_not_change_it() -> None:
    rule = DangerousDivergence(max_rate=0.1, alpha=0.01)
    safe = _pairs(20_000, 0.02, 0.03, seed=2)
    assert all(rule.check(safe.iloc[:end]) is None for end in range(1000, 20_001, 1000))
    risky = _pairs(20_000, 0.02, 0.3, seed=3)
    full = rule.check(risky)
    assert full is not None
    early = rule.check(risky.iloc[: full.requests])
    assert early is not None
    assert early.requests == full.requests, "the same first crossing"
    assert rule.check(risky.iloc[: full.requests - 1]) is None


def test_the_rule_refuses_nonsense() -> None:
    with pytest.raises(ValidationError) as info:
        DangerousDivergence(max_rate=0.0)
    assert info.value.field == "max_rate"
    with pytest.raises(ValidationError) as info:
        DangerousDivergence(alpha=0.7)
    assert info.value.field == "alpha"


def test_a_burst_on_one_card_is_one_trial_unless_counted_by_block() -> None:
    burst = pd.DataFrame(
        {
            "rollout": "s1",
            "ts": pd.date_range(T0, periods=10, freq="min"),
            "customer_id": pd.array([42] * 10, dtype="Int64"),
            "request_id": [f"q{i}" for i in range(10)],
            "champion_decision": "fraud",
            "challenger_decision": "legit",
        }
    )
    assert DangerousDivergence(max_rate=0.2).check(burst) is None  # one card: one trial
    by_block = DangerousDivergence(max_rate=0.2, unit="block").check(burst)
    assert by_block is not None
    assert by_block.unit == "block"
    with pytest.raises(ValidationError) as info:
        DangerousDivergence(unit="minute")
    assert info.value.field == "unit"
