"""The registry's records: lineage, environment, model versions and alias moves."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlsd.registry.formats import Flavor
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


class ModelVersion(BaseModel):
    """One immutable registered version of a model (tags and status may change)."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    created_at: datetime
    flavor: Flavor
    artifacts: dict[str, str]
    signature: Signature
    lineage: Lineage
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    environment: Environment
    description: str = ""
    status: Status = "ready"

    @property
    def uri(self) -> str:
        """`models:/NAME/VERSION`."""
        return format_uri(self.name, self.version)


BODY_FIELDS = frozenset(
    {"flavor", "artifacts", "signature", "lineage", "params", "metrics", "description"}
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
