"""The registry's records: lineage, environment, model versions and alias moves."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlsd.registry.formats import StoredFlavor
from mlsd.registry.names import format_uri
from mlsd.registry.signature import Signature

Status = Literal["ready", "archived"]
MoveKind = Literal["set", "rollback", "promote", "delete"]


def utcnow() -> datetime:
    """Now, UTC, timezone-aware."""
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return None if value is None else value.astimezone(UTC)


class Lineage(BaseModel):
    """Where a version came from: enough to trust it, serve it and retrain it.

    `feature_views` maps each feature view to the version the model was trained
    on; serving refuses a model whose feature versions it does not serve.
    `config` holds the training configuration that `reproduce` replays.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    training_set_hash: str = ""
    feature_views: dict[str, str] = Field(default_factory=dict)
    code_commit: str = ""
    dataset: str = ""
    dataset_hash: str = ""
    train_period: tuple[datetime, datetime] | None = None
    test_period: tuple[datetime, datetime] | None = None
    parent_version: int | None = None
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("train_period", "test_period")
    @classmethod
    def _utc(cls, value: tuple[datetime, datetime] | None) -> tuple[datetime, datetime] | None:
        if value is None:
            return None
        start, end = _aware(value[0]), _aware(value[1])
        if start is None or end is None or end < start:
            raise ValueError("a period needs a start before its end")
        return start, end


class Environment(BaseModel):
    """The Python, platform and exact distribution versions a model was registered in."""

    model_config = ConfigDict(frozen=True)

    python: str
    implementation: str
    platform: str
    packages: dict[str, str]

    @property
    def requirements(self) -> str:
        """A pinned requirements file (`name==version` per line, sorted)."""
        return "".join(f"{name}=={ver}\n" for name, ver in sorted(self.packages.items()))

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON: identical environments are stored once."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class DecisionThreshold(BaseModel):
    """The score at or above which serving decides `fraud`, and how training chose it.

    `policy` names the rule (`alert_budget`, `expected_cost`, or `manual`), `parameter`
    its setting (cards a day, euros per review) and `validation` what the threshold
    achieved on the validation folds (precision, recall, cards per day, ...).

    >>> DecisionThreshold(value=0.37, policy="alert_budget", parameter=100,
    ...     validation={"card_precision": 0.62, "card_recall": 0.5,
    ...                 "cards_per_day": 94.0}).describe()
    '0.37 (alert_budget k=100; validation card precision 0.62, recall 0.50, 94 cards/day)'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: float = Field(allow_inf_nan=False)
    policy: str = Field(min_length=1)
    parameter: float | None = Field(default=None, allow_inf_nan=False)
    validation: dict[str, float] = Field(default_factory=dict)

    @field_validator("validation")
    @classmethod
    def _finite(cls, value: dict[str, float]) -> dict[str, float]:
        for key, number in value.items():
            if not math.isfinite(number):
                raise ValueError(f"validation figure {key!r} is not finite ({number})")
        return value

    def describe(self) -> str:
        """One line: the value, the policy with its parameter, the validation figures."""
        setting = {"alert_budget": "k={:g}", "expected_cost": "{:g} EUR/alert"}.get(
            self.policy, "{:g}"
        )
        how = self.policy
        if self.parameter is not None:
            how += " " + setting.format(self.parameter)
        v = self.validation
        figures = []
        if "card_precision" in v:
            figures.append(f"card precision {v['card_precision']:.2f}")
        if "card_recall" in v:
            figures.append(f"recall {v['card_recall']:.2f}")
        if "cards_per_day" in v:
            figures.append(f"{v['cards_per_day']:.0f} cards/day")
        if "net_gain_per_day" in v:
            figures.append(f"net {v['net_gain_per_day']:.0f} EUR/day")
        if figures:
            how += "; validation " + ", ".join(figures)
        return f"{self.value:.4g} ({how})"


class ModelVersion(BaseModel):
    """One immutable registered version of a model (tags and status may change)."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    created_at: datetime
    flavor: StoredFlavor
    artifacts: dict[str, str]
    signature: Signature
    lineage: Lineage
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    threshold: DecisionThreshold | None = None
    """The decision threshold; None on versions registered before thresholds were stored."""
    tags: dict[str, str] = Field(default_factory=dict)
    environment: Environment
    description: str = ""
    status: Status = "ready"

    @property
    def uri(self) -> str:
        """`models:/NAME/VERSION`."""
        return format_uri(self.name, self.version)


BODY_FIELDS = frozenset(
    {
        "flavor",
        "artifacts",
        "signature",
        "lineage",
        "params",
        "metrics",
        "threshold",
        "description",
    }
)


class AliasMove(BaseModel):
    """One recorded move of an alias: when, from which version, to which, why, by whom."""

    model_config = ConfigDict(frozen=True)

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: datetime
    kind: MoveKind
    reason: str
    actor: str


class ModelSummary(BaseModel):
    """One registered model in a listing."""

    model_config = ConfigDict(frozen=True)

    name: str
    created_at: datetime
    latest_version: int
    aliases: dict[str, int]
