"""SimulatorConfig: handbook defaults, and one clear ConfigError per nonsense input."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from mlsd.data.config import SimulatorConfig, load_scenarios
from mlsd.data.events import AmountShift, CardTesting
from mlsd.errors import ConfigError


def test_defaults_are_the_handbooks() -> None:
    config = SimulatorConfig()
    assert (config.n_customers, config.n_terminals, config.n_days) == (5000, 10000, 183)
    assert config.start_date == date(2018, 4, 1)
    assert config.end_date == date(2018, 9, 30)
    assert config.radius == 5.0
    assert config.label_delay_days == 7
    assert config.compromised_terminals_per_day == 2
    assert config.compromised_customers_per_day == 3


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"n_customers": 0}, "n_customers"),
        ({"n_terminals": -1}, "n_terminals"),
        ({"n_days": -5}, "n_days"),
        ({"radius": 0}, "radius"),
        ({"radius": -2.5}, "radius"),
        ({"seed": -1}, "seed"),
        ({"label_delay_days": -1}, "label_delay_days"),
        ({"n_customers": "many"}, "n_customers"),
        ({"no_such_option": 1}, "no_such_option"),
    ],
)
def test_nonsense_is_a_config_error_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        SimulatorConfig(**changes)
    assert info.value.field == field
    assert field in info.value.message


def _with_event(event: dict[str, Any]) -> SimulatorConfig:
    return SimulatorConfig(n_days=30, scenarios=[event])


def test_unknown_scenario_type() -> None:
    with pytest.raises(ConfigError, match="unknown scenario type") as info:
        _with_event({"type": "alien_invasion", "name": "x", "start": "2018-04-02"})
    assert info.value.field == "scenarios[0]"


def test_scenario_without_type() -> None:
    with pytest.raises(ConfigError, match="needs a 'type'"):
        _with_event({"name": "x", "start": "2018-04-02"})


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"start": "2018-03-31"}, "scenarios[0].start"),
        ({"start": "2018-05-01"}, "scenarios[0].start"),  # day 30 is past a 30-day range
        ({"start": "2018-04-05", "end": "2018-06-01"}, "scenarios[0].end"),
        ({"start": "2018-04-05", "end": "2018-04-04"}, "scenarios[0].end"),
        ({"start": "2018-04-05", "factor": -1}, "scenarios[0].factor"),
        ({"start": "not a date"}, "scenarios[0].start"),
    ],
)
def test_bad_event_fields(event: dict[str, Any], field: str) -> None:
    body = {"type": "amount_shift", "name": "shift", "factor": 2.0} | event
    with pytest.raises(ConfigError) as info:
        _with_event(body)
    assert info.value.field == field


def test_event_names_are_unique() -> None:
    event = {"type": "seasonal", "name": "same", "start": "2018-04-02", "factor": 2}
    with pytest.raises(ConfigError, match="used twice") as info:
        SimulatorConfig(n_days=30, scenarios=[event, event])
    assert info.value.field == "scenarios[1].name"


def test_events_parse_into_their_types() -> None:
    config = SimulatorConfig(
        n_days=30,
        scenarios=[
            {"type": "amount_shift", "name": "a", "start": "2018-04-10", "factor": 1.5},
            {"type": "card_testing", "name": "b", "start": "2018-04-20"},
        ],
    )
    shift, testing = config.scenarios
    assert isinstance(shift, AmountShift)
    assert isinstance(testing, CardTesting)
    assert config.event_days(shift) == (9, 29)
    assert config.event_days(testing) == (19, 29)


def test_manifest_round_trip() -> None:
    config = SimulatorConfig(
        n_days=30,
        scenarios=[{"type": "seasonal", "name": "s", "start": "2018-04-10", "factor": 2}],
    )
    again = SimulatorConfig.from_dict(json.loads(json.dumps(config.model_dump(mode="json"))))
    assert again == config


def test_scaled_keeps_handbook_rates() -> None:
    config = SimulatorConfig.scaled(500, 1000, n_days=10)
    assert config.compromised_terminals_per_day == pytest.approx(0.2)
    assert config.compromised_customers_per_day == pytest.approx(0.3)


def test_load_scenarios(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"scenarios": [{"type": "seasonal"}]}))
    assert load_scenarios(path) == [{"type": "seasonal"}]
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="list of objects"):
        load_scenarios(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        load_scenarios(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenarios(tmp_path / "missing.json")


def test_too_large_a_world_is_refused_before_any_work() -> None:
    with pytest.raises(ConfigError, match="customer-days") as info:
        SimulatorConfig(n_customers=1_000_000, n_days=365)
    assert info.value.field == "n_customers"
    huge = {"type": "card_testing", "name": "ct", "start": "2018-04-02", "bursts_per_day": 100_000,
            "tx_per_burst": 1000}  # fmt: skip
    with pytest.raises(ConfigError, match="would add") as info:
        _with_event(huge)
    assert info.value.field == "scenarios[0].bursts_per_day"
