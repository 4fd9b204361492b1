"""Feature definitions as code: entities and feature views, each versioned by a content hash.

A view's version is the sha256 of its canonical JSON form, so changing anything that
changes values (source, aggregations, windows, TTL, features, transformation) yields a new
version, while the old one stays readable in the registry, the offline store and the
online store.

Kinds of view:

- `window`: declared aggregations over event-time windows (`mlsd.features.aggregations`)
  and derived expressions over them, compiled to one DuckDB query; streamable (the stream
  processor updates them per event, `mlsd.features.incremental`);
- `sql`: a DuckDB query over the source for batch-only features; not streamable;
- `request`: request-time transforms of the transaction (`mlsd.features.transforms`);
- `embedding`: an SVD per refresh (`mlsd.features.embeddings`).

Records of the two kinds views had before declared aggregations (`customer_spending`,
`terminal_risk`) still load: as the same aggregations, keeping the version they were
stored under, so models and tables of those versions stay valid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mlsd.errors import ValidationError
from mlsd.features.aggregations import Aggregation, Derived
from mlsd.features.sources import DATASET, TRANSACTIONS, Source
from mlsd.features.transforms import STANDARD, RequestTransform

KINDS = ("window", "sql", "request", "embedding")
LEGACY_KINDS = ("customer_spending", "terminal_risk")


@dataclass(frozen=True)
class Entity:
    """Something features describe, identified by one integer join key."""

    name: str
    join_key: str
    description: str = ""


@dataclass(frozen=True)
class FeatureView:
    """A group of features of one entity, computed by one transformation from one source.

    `kind` names the transformation (see the module docstring). A `window` view lists its
    `aggregations` and `derived` features; `features` names the outputs, in order, among
    them (an aggregation left out, like the fraud count behind a risk, is computed but not
    stored). A `sql` view's `sql` is a DuckDB query where `{source}` stands for the
    source's rows; it returns the join key, the source's timestamp field and the features.
    `windows_days`/`delay_days` are the embedding view's history. A request view holds one
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
    source: Source | str = DATASET
    description: str = field(default="", compare=False)
    transforms: tuple[RequestTransform, ...] = ()
    aggregations: tuple[Aggregation, ...] = ()
    derived: tuple[Derived, ...] = ()
    sql: str | None = None
    legacy_record: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind in LEGACY_KINDS:  # the old spelling: the same window view, same version
            self._from_legacy_fields()
            return
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "aggregations", tuple(self.aggregations))
        object.__setattr__(self, "derived", tuple(self.derived))
        if isinstance(self.source, str):
            if self.source != DATASET:
                raise ValidationError(
                    f"view {self.name!r}: source must be a Source (or {DATASET!r})",
                    field="source",
                )
            object.__setattr__(self, "source", TRANSACTIONS)
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
        if self.kind == "window":
            self._check_window()
            if self.legacy_record is not None and _legacy(json.loads(self.legacy_record)) != self:
                object.__setattr__(self, "legacy_record", None)  # changed (`replace`): new form
        elif self.aggregations or self.derived:
            raise ValidationError(
                f"view {self.name!r}: aggregations and derived features need kind 'window'",
                field="aggregations",
            )
        if self.kind == "sql" and not (self.sql or "").strip():
            raise ValidationError(f"sql view {self.name!r} needs its query", field="sql")
        if self.kind != "sql" and self.sql is not None:
            raise ValidationError(f"view {self.name!r}: sql is for kind 'sql'", field="sql")

    def _from_legacy_fields(self) -> None:
        if self.transforms:
            raise ValidationError(
                f"view {self.name!r} is a batch view: transforms are for request views",
                field="transforms",
            )
        if self.entity is None:
            raise ValidationError(f"view {self.name!r} needs an entity", field="entity")
        record: dict[str, Any] = {
            "name": self.name,
            "entity": _entity_dict(self.entity),
            "kind": self.kind,
            "features": list(self.features),
            "ttl_seconds": self.ttl.total_seconds(),
            "windows_days": list(self.windows_days),
            "delay_days": self.delay_days,
            "source": DATASET,
            "description": self.description,
        }
        view = _legacy(record)
        for name in ("kind", "features", "source", "aggregations", "derived", "legacy_record"):
            object.__setattr__(self, name, getattr(view, name))
        object.__setattr__(self, "windows_days", ())
        object.__setattr__(self, "delay_days", 0)

    def _check_window(self) -> None:
        """Names unique, outputs among them, derived args known or left to the source."""
        if not self.aggregations:
            raise ValidationError(
                f"window view {self.name!r} needs aggregations", field="aggregations"
            )
        if self.windows_days or self.delay_days:
            raise ValidationError(
                f"window view {self.name!r}: give windows on its aggregations",
                field="windows_days",
            )
        names = [a.name for a in self.aggregations] + [d.name for d in self.derived]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValidationError(
                f"view {self.name!r}: {', '.join(dup)} defined twice", field="aggregations"
            )
        unknown = [f for f in self.features if f not in names]
        if unknown:
            raise ValidationError(
                f"view {self.name!r}: features {unknown} are neither aggregations nor derived",
                field="features",
            )
        for d in self.derived:
            if d.name in d.args:
                raise ValidationError(
                    f"view {self.name!r}: derived {d.name!r} refers to itself", field="derived"
                )

    @property
    def streamable(self) -> bool:
        """Whether the stream processor can update this view per event (window views)."""
        return self.kind == "window"

    @property
    def event_source(self) -> Source:
        """The view's source (a dataset's transactions unless given)."""
        return self.source if isinstance(self.source, Source) else TRANSACTIONS

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
        if self.legacy_record is not None:  # loaded from a record of a legacy kind: as stored
            record: dict[str, Any] = json.loads(self.legacy_record)
            return {**record, "description": self.description}
        if self.kind in ("window", "sql"):
            src = self.event_source
            return {
                "name": self.name,
                "entity": None if self.entity is None else _entity_dict(self.entity),
                "kind": self.kind,
                "features": list(self.features),
                "ttl_seconds": self.ttl.total_seconds(),
                "source": DATASET if src == TRANSACTIONS else src.to_dict(),
                "aggregations": [a.to_dict() for a in self.aggregations],
                "derived": [d.to_dict() for d in self.derived],
                "sql": self.sql,
                "description": self.description,
            }
        return {
            "name": self.name,
            "entity": None if self.entity is None else _entity_dict(self.entity),
            "kind": self.kind,
            "features": list(self.features),
            "ttl_seconds": self.ttl.total_seconds(),
            "windows_days": list(self.windows_days),
            "delay_days": self.delay_days,
            "source": DATASET,
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
        """Rebuild a view from `to_dict` output (or a record of a legacy kind)."""
        ent = data["entity"]
        if data.get("kind") in LEGACY_KINDS:
            return _legacy(data)
        if data.get("kind") in ("window", "sql"):
            src = data.get("source", DATASET)
            return cls(
                name=data["name"],
                entity=None if ent is None else Entity(**ent),
                kind=data["kind"],
                features=tuple(data["features"]),
                ttl=timedelta(seconds=float(data["ttl_seconds"])),
                source=src if isinstance(src, str) else Source.from_dict(src),
                description=data.get("description", ""),
                aggregations=tuple(Aggregation.from_dict(a) for a in data["aggregations"]),
                derived=tuple(Derived.from_dict(d) for d in data.get("derived", ())),
                sql=data.get("sql"),
            )
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
        return content_hash(self.to_dict())


def content_hash(record: dict[str, Any]) -> str:
    """16 hex digits of the sha256 of a canonical record, its description left out."""
    body = {k: v for k, v in record.items() if k != "description"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _entity_dict(entity: Entity) -> dict[str, str]:
    return {"name": entity.name, "join_key": entity.join_key, "description": entity.description}


def _legacy(data: dict[str, Any]) -> FeatureView:
    """A `customer_spending` / `terminal_risk` record as the window view it always was.

    Customer: count and mean amount per window, delay 0. Terminal: count and fraud rate
    (sum of TX_FRAUD over count, 0 when empty) per window, delayed by `delay_days`. The
    view keeps the version the record was stored under.
    """
    aggs: list[Aggregation] = []
    derived: list[Derived] = []
    feats = list(data["features"])
    windows = [int(w) for w in data["windows_days"]]
    if len(feats) != 2 * len(windows) or any(w <= 0 for w in windows):
        raise ValidationError(
            f"view {data['name']!r}: {data['kind']} takes two features per positive window",
            field="windows_days",
        )
    if int(data.get("delay_days", 0)) < 0:
        raise ValidationError("delay_days must be >= 0", field="delay_days")
    delay = timedelta(days=int(data.get("delay_days", 0)))
    for w, n_name, v_name in zip(windows, feats[::2], feats[1::2], strict=True):
        window = timedelta(days=int(w))
        if data["kind"] == "customer_spending":
            aggs += [
                Aggregation(n_name, "count", None, window),
                Aggregation(v_name, "mean", "TX_AMOUNT", window),
            ]
        else:
            frauds = f"{v_name}_FRAUDS"
            aggs += [
                Aggregation(n_name, "count", None, window, delay),
                Aggregation(frauds, "sum", "TX_FRAUD", window, delay),
            ]
            derived.append(Derived(v_name, "ratio", (frauds, n_name)))
    ent = data["entity"]
    view = FeatureView(
        name=data["name"],
        entity=Entity(**ent),
        kind="window",
        features=tuple(feats),
        ttl=timedelta(seconds=float(data["ttl_seconds"])),
        description=data.get("description", ""),
        aggregations=tuple(aggs),
        derived=tuple(derived),
    )
    object.__setattr__(view, "legacy_record", json.dumps(data, sort_keys=True))
    return view
