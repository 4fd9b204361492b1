"""A rollout spec: which challenger goes beside which champion, how, and under what guardrails.

Written as YAML or JSON by a user, so everything is validated here once, with the field named:
weights that do not sum to 100, canary steps that do not rise to 100, a challenger equal to
the champion, unknown keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from mlsd.errors import ValidationError

RolloutKind = Literal["shadow", "ab", "canary", "bluegreen"]
Arm = Literal["champion", "challenger"]
Percent = Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class Guardrails(BaseModel):
    """What a challenger must keep to go on (canary analysis, checked every interval)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_p99_ms: Annotated[float, Field(gt=0, le=60_000)] = 50.0
    #: Population stability index of the challenger's scores against the champion's (a check
    #: fails on it only when a two-sample KS test also finds a difference, p < 0.01).
    max_score_psi: Annotated[float, Field(gt=0, le=10)] = 0.25
    #: When labels exist: the challenger's fraud catch rate must not be significantly
    #: (one-sided Fisher test, p < 0.05) below this fraction of the champion's.
    min_catch_ratio: Annotated[float, Field(ge=0, le=1)] = 0.8
    #: A check on fewer challenger requests decides nothing (neither a pass nor a failure).
    min_requests: Annotated[int, Field(ge=1, le=1_000_000)] = 30


def _even_split() -> dict[Arm, float]:
    return {"champion": 50.0, "challenger": 50.0}


class RolloutSpec(BaseModel):
    """One rollout on one endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=NAME)]
    endpoint: Annotated[str, Field(pattern=NAME)] = "fraud"
    #: The alias a promotion moves to the challenger (and a rollback back to the champion).
    alias: Annotated[str, Field(pattern=NAME)] = "champion"
    kind: RolloutKind
    champion: Annotated[int, Field(ge=1)]
    challenger: Annotated[int, Field(ge=1)]
    #: shadow: the share of requests mirrored to the challenger (percent).
    share: Percent = 100.0
    #: ab: the arms' shares of customers (percent, summing to 100).
    weights: dict[Arm, Annotated[float, Field(ge=0, le=100)]] = Field(default_factory=_even_split)
    #: canary: the challenger's share of customers at each step (percent, rising to 100).
    steps: list[Percent] = Field(default_factory=lambda: [1.0, 5.0, 25.0, 50.0, 100.0])
    interval_s: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    max_failed_checks: Annotated[int, Field(ge=1, le=100)] = 1
    guardrails: Guardrails = Field(default_factory=Guardrails)

    @model_validator(mode="after")
    def _consistent(self) -> RolloutSpec:
        if self.challenger == self.champion:
            raise ValueError("challenger: must be another version than the champion")
        if set(self.weights) != {"champion", "challenger"}:
            raise ValueError("weights: give both 'champion' and 'challenger'")
        if abs(sum(self.weights.values()) - 100.0) > 1e-9:
            raise ValueError(f"weights: must sum to 100, not {sum(self.weights.values()):g}")
        if not self.steps or any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError("steps: must rise strictly")
        if self.steps[-1] != 100.0:
            raise ValueError("steps: the last step must be 100")
        return self

    @property
    def challenger_share(self) -> float:
        """The challenger's share of customers (percent) when the rollout starts."""
        if self.kind == "ab":
            return self.weights["challenger"]
        if self.kind == "canary":
            return self.steps[0]
        return 100.0 if self.kind == "bluegreen" else 0.0

    @classmethod
    def parse(cls, text: str, *, source: str = "spec") -> RolloutSpec:
        """A spec from JSON or YAML text; a ValidationError naming the field otherwise."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = _yaml(text, source)
        if not isinstance(data, dict):
            raise ValidationError(f"{source}: a rollout spec is a mapping", field="spec")
        try:
            return cls.model_validate(data)
        except PydanticValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or _field_in(first["msg"])
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ValidationError(f"{source}: {where}: {message}", field=where) from None

    @classmethod
    def load(cls, path: Path) -> RolloutSpec:
        """A spec from a `.json`, `.yaml` or `.yml` file."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot read {path}: {exc.strerror}", field="spec") from None
        return cls.parse(text, source=str(path))


def _field_in(message: str) -> str:
    """`weights` from "Value error, weights: must sum to 100"."""
    head = message.removeprefix("Value error, ").split(":", 1)[0]
    return head if head.isidentifier() else "spec"


def _yaml(text: str, source: str) -> object:
    try:
        import yaml
    except ModuleNotFoundError:  # pragma: no cover - PyYAML comes with the dev extras
        raise ValidationError(
            f"{source}: not JSON, and YAML needs PyYAML (pip install pyyaml)", field="spec"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(f"{source}: not valid JSON or YAML: {exc}", field="spec") from None
