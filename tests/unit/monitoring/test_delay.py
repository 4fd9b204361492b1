"""Detection delay on an injected scenario, where the simulator knows when it starts."""

from __future__ import annotations

import pytest

from mlsd.monitoring.delay import GAP_HOURS, measure, scenario_config


def test_an_amount_shift_is_detected_after_its_start_and_not_before() -> None:
    rows = measure("amount_shift", rate=1e-3, n_customers=300, detectors=("page_hinkley", "kswin"))
    assert [r.detector for r in rows] == ["page_hinkley", "kswin"]
    for r in rows:
        assert r.stream == "TX_AMOUNT"
        assert r.quiet_events > 3_000
        assert r.false_alarms <= 3 * r.rate * r.quiet_events + 5  # about 1 per 1,000 events
        assert r.delay_events is not None
        assert r.delay_hours is not None
        assert 0 <= r.delay_hours < 48


def test_scenarios_are_the_simulators_events() -> None:
    config = scenario_config("compromise_rate", n_customers=300)
    (event,) = config.scenarios
    assert event.type == "compromise_rate"
    assert config.day_index(event.start) == 50
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario_config("alien_invasion")


def test_a_seasonal_surge_is_seen_on_the_gaps_between_a_cards_payments() -> None:
    """Twice the payments a day: the hours since a card's previous payment fall."""
    rows = measure("seasonal", rate=1e-3, n_customers=300, detectors=("page_hinkley",))
    (r,) = rows
    assert r.stream == GAP_HOURS
    assert r.false_alarms <= 3 * r.rate * r.quiet_events + 5
    assert r.delay_hours is not None
    assert 0 <= r.delay_hours < 48
