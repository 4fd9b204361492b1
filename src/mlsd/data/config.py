"""Configuration of the transaction simulator; defaults are the Fraud Detection Handbook's.

Any nonsense (zero customers, negative days, radius <= 0, an unknown scenario type, an
event dated outside the simulated range) raises `ConfigError` naming the field, before
anything is generated or written.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlsd.data.events import EVENT_TYPES, CardTesting, ScenarioEvent
from mlsd.errors import ConfigError

MAX_CUSTOMER_DAYS: Final = 8_000_000  # ~16 M transactions, ~4 GB peak (0.5 GB at the default)
MAX_INJECTED_ROWS: Final = 20_000_000


def _field_path(loc: tuple[int | str, ...]) -> str:
    """`('scenarios', 0, 'amount_shift', 'factor')` -> `scenarios[0].factor`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in EVENT_TYPES:
            continue  # the discriminator's branch name, not a field
        else:
            out += f".{part}" if out else part
    return out


def config_error(exc: pydantic.ValidationError) -> ConfigError:
    """One clear `ConfigError` from pydantic's first complaint."""
    first = exc.errors()[0]
    field = _field_path(tuple(first["loc"]))
    message = first["msg"]
    if first["type"] == "union_tag_invalid":
        message = f"unknown scenario type; expected one of {', '.join(EVENT_TYPES)}"
    elif first["type"] == "union_tag_not_found":
        message = f"scenario needs a 'type': one of {', '.join(EVENT_TYPES)}"
    return ConfigError(f"invalid simulator configuration: {field}: {message}", field=field)


class SimulatorConfig(BaseModel):
    """What to simulate. Defaults reproduce the handbook (section 3.2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_customers: int = Field(default=5000, gt=0, le=10_000_000)
    n_terminals: int = Field(default=10000, gt=0, le=10_000_000)
    n_days: int = Field(default=183, gt=0, le=3660)
    start_date: date = date(2018, 4, 1)
    radius: float = Field(default=5.0, gt=0.0, le=200.0)
    seed: int = Field(default=0, ge=0)
    label_delay_days: int = Field(default=7, ge=0, le=365)
    scenarios: list[ScenarioEvent] = Field(default_factory=list, max_length=62)
    # The handbook's fraud scenarios (section 3.2.4).
    amount_fraud_threshold: float = Field(default=220.0, gt=0.0)
    compromised_terminals_per_day: float = Field(default=2.0, ge=0.0, le=1_000_000.0)
    terminal_compromise_days: int = Field(default=28, gt=0)
    compromised_customers_per_day: float = Field(default=3.0, ge=0.0, le=1_000_000.0)
    customer_compromise_days: int = Field(default=14, gt=0)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise config_error(exc) from None

    @model_validator(mode="after")
    def _check_events(self) -> SimulatorConfig:
        if self.n_customers * self.n_days > MAX_CUSTOMER_DAYS:
            raise ConfigError(
                f"{self.n_customers:,} customers x {self.n_days:,} days is more than "
                f"{MAX_CUSTOMER_DAYS:,} customer-days (about {2 * MAX_CUSTOMER_DAYS:,} "
                "transactions): too large for one process; simulate fewer days at a time",
                field="n_customers",
            )
        names: set[str] = set()
        for i, event in enumerate(self.scenarios):
            if event.name in names:
                raise ConfigError(
                    f"scenario name {event.name!r} is used twice", field=f"scenarios[{i}].name"
                )
            names.add(event.name)
            for attr in ("start", "end"):
                when = getattr(event, attr)
                if when is not None and not self.start_date <= when <= self.end_date:
                    raise ConfigError(
                        f"scenario {event.name!r}: {attr} {when} is outside the simulated range "
                        f"{self.start_date}..{self.end_date}",
                        field=f"scenarios[{i}].{attr}",
                    )
            if event.end is not None and event.end < event.start:
                raise ConfigError(
                    f"scenario {event.name!r}: end {event.end} is before start {event.start}",
                    field=f"scenarios[{i}].end",
                )
            if isinstance(event, CardTesting):
                first, last = self.event_days(event)
                rows = (last - first + 1) * event.bursts_per_day * event.tx_per_burst
                if rows > MAX_INJECTED_ROWS:
                    raise ConfigError(
                        f"scenario {event.name!r} would add {rows:,} transactions "
                        f"(at most {MAX_INJECTED_ROWS:,})",
                        field=f"scenarios[{i}].bursts_per_day",
                    )
        return self

    @property
    def end_date(self) -> date:
        """The last simulated day (inclusive)."""
        return self.start_date + timedelta(days=self.n_days - 1)

    def day_index(self, when: date) -> int:
        """Day number of `when` since the start date."""
        return (when - self.start_date).days

    def event_days(self, event: ScenarioEvent) -> tuple[int, int]:
        """The event's day range as indices, `[first, last]` inclusive."""
        last = self.n_days - 1 if event.end is None else self.day_index(event.end)
        return self.day_index(event.start), last

    @classmethod
    def scaled(cls, n_customers: int, n_terminals: int, **fields: Any) -> SimulatorConfig:
        """A smaller (or larger) world with the handbook's fraud rates: the number of
        terminals and customers compromised per day scales with their populations
        (2 per 10,000 terminals, 3 per 5,000 customers; fractions spread over days)."""
        return cls(
            n_customers=n_customers,
            n_terminals=n_terminals,
            compromised_terminals_per_day=2.0 * n_terminals / 10_000,
            compromised_customers_per_day=3.0 * n_customers / 5_000,
            **fields,
        )

    def with_changes(self, **changes: Any) -> SimulatorConfig:
        """A validated copy with some fields changed."""
        return SimulatorConfig(**{**self.model_dump(), **changes})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulatorConfig:
        """Validate a plain dict (e.g. from a manifest)."""
        if not isinstance(data, dict):
            raise ConfigError("simulator configuration must be a JSON object")
        return cls(**data)


def load_scenarios(path: Path) -> list[dict[str, Any]]:
    """Read a JSON file holding a list of scenario events (or {"scenarios": [...]})."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"scenario file {path} does not exist", field="scenarios") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"scenario file {path} is not JSON: {exc}", field="scenarios") from None
    if isinstance(data, dict) and "scenarios" in data:
        data = data["scenarios"]
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ConfigError(
            f"scenario file {path} must hold a JSON list of objects", field="scenarios"
        )
    return data
