"""Feature definitions as code: entities and feature views, each versioned by a content hash.

A view's version is the sha256 of its canonical JSON form, so changing anything that
changes values (windows, TTL, features, transformation) yields a new version, while the
old one stays readable in the registry, the offline store and the online store.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mlsd.errors import ValidationError
from mlsd.features.transforms import STANDARD, RequestTransform

KINDS = ("customer_spending", "terminal_risk", "request", "embedding")


@dataclass(frozen=True)
class Entity:
    """Something features describe, identified by one integer join key."""

    name: str
    join_key: str
    description: str = ""


@dataclass(frozen=True)
class FeatureView:
    """A group of features of one entity, computed by one transformation from one source.

    `kind` names the batch transformation (`customer_spending`, `terminal_risk`, `embedding`:
    `mlsd.features.embeddings`) or `request` for features computed from the request itself.
    `delay_days` shifts the windows back (the terminal view's label delay). A request view holds one
    `RequestTransform` per feature, in feature order: the single definition that the batch
    pipeline, the point-in-time join and serving all render; features left out get their
    standard transform (`mlsd.features.transforms.STANDARD`).
    """

    name: str
    entity: Entity | None
    kind: str
    features: tuple[str, ...]
    ttl: timedelta
    windows_days: tuple[int, ...] = ()
    delay_days: int = 0
    source: str = "transactions"
    description: str = field(default="", compare=False)
    transforms: tuple[RequestTransform, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValidationError(f"invalid feature view name {self.name!r}", field="name")
        if self.ttl < timedelta(0):
            raise ValidationError(
                f"feature view {self.name!r} has a negative TTL ({self.ttl})", field="ttl"
            )
        if self.kind not in KINDS:
            raise ValidationError(
                f"unknown transformation kind {self.kind!r} (known: {', '.join(KINDS)})",
                field="kind",
            )
        if any(w <= 0 for w in self.windows_days):
            raise ValidationError("window sizes must be positive days", field="windows_days")
        if self.delay_days < 0:
            raise ValidationError("delay_days must be >= 0", field="delay_days")
        if len(set(self.features)) != len(self.features) or not self.features:
            raise ValidationError("features must be non-empty and unique", field="features")
        if self.kind != "request" and self.entity is None:
            raise ValidationError(f"view {self.name!r} needs an entity", field="entity")
        if self.kind == "request":
            object.__setattr__(self, "transforms", self._resolve_transforms())
        elif self.transforms:
            raise ValidationError(
                f"view {self.name!r} is a batch view: transforms are for request views",
                field="transforms",
            )

    def _resolve_transforms(self) -> tuple[RequestTransform, ...]:
        """One transform per feature, in feature order; standard ones where none is given."""
        given: dict[str, RequestTransform] = {}
        for t in self.transforms:
            if t.feature not in self.features or t.feature in given:
                raise ValidationError(
                    f"view {self.name!r}: transform {t.feature!r} is not one of its features "
                    "or is given twice",
                    field="transforms",
                )
            given[t.feature] = t
        out: list[RequestTransform] = []
        for feat in self.features:
            found = given.get(feat, STANDARD.get(feat))
            if found is None:
                raise ValidationError(
                    f"request feature {feat!r} of view {self.name!r} needs a transform",
                    field="transforms",
                )
            out.append(found)
        return tuple(out)

    @property
    def ttl_us(self) -> int:
        """The TTL in microseconds."""
        return int(self.ttl / timedelta(microseconds=1))

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-ready form; its hash is the version."""
        return {
            "name": self.name,
            "entity": None
            if self.entity is None
            else {
                "name": self.entity.name,
                "join_key": self.entity.join_key,
                "description": self.entity.description,
            },
            "kind": self.kind,
            "features": list(self.features),
            "ttl_seconds": self.ttl.total_seconds(),
            "windows_days": list(self.windows_days),
            "delay_days": self.delay_days,
            "source": self.source,
            "description": self.description,
            # Only non-standard transforms: a view of standard features hashes as it did
            # before transforms were spelled out, so its version (and the models trained
            # on it) stay valid.
            **(
                {"transforms": [t.to_dict() for t in custom]}
                if (custom := [t for t in self.transforms if STANDARD.get(t.feature) != t])
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureView:
        """Rebuild a view from `to_dict` output."""
        ent = data["entity"]
        return cls(
            name=data["name"],
            entity=None if ent is None else Entity(**ent),
            kind=data["kind"],
            features=tuple(data["features"]),
            ttl=timedelta(seconds=float(data["ttl_seconds"])),
            windows_days=tuple(int(w) for w in data["windows_days"]),
            delay_days=int(data["delay_days"]),
            source=data["source"],
            description=data.get("description", ""),
            transforms=tuple(RequestTransform.from_dict(t) for t in data.get("transforms", ())),
        )

    @property
    def version(self) -> str:
        """The content hash of the definition: 16 hex digits of sha256."""
        body = {k: v for k, v in self.to_dict().items() if k != "description"}
        blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
