"""Online feature vectors for scoring requests: the serving hot path, kept lean (no pandas).

A `VectorPlan` is resolved once per feature list; `request_values` then does one batched
online read for all rows and fills a float32 matrix in the order asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from mlsd.data import schema
from mlsd.errors import ValidationError
from mlsd.features.offline import ViewRequest
from mlsd.features.online import EXPIRED, MISSING, PRESENT, Lookup, OnlineStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class OnlineVectors:
    """Feature matrix (n, len(features)) float32, status per value, versions served."""

    features: list[str]
    values: npt.NDArray[np.float32]
    status: list[dict[str, str]]
    view_versions: dict[str, str]


@dataclass(frozen=True)
class _ViewSlot:
    name: str
    version: str
    ttl_us: int
    key: str
    columns: list[tuple[int, int, str]]  # (output column, stored column, feature)


@dataclass(frozen=True)
class VectorPlan:
    """Where each asked feature comes from."""

    features: list[str]
    request: list[tuple[int, str]]  # (output column, request feature)
    views: list[_ViewSlot]
    versions: dict[str, str]

    @classmethod
    def make(cls, reqs: Sequence[ViewRequest], features: list[str]) -> VectorPlan:
        """Resolve output columns once."""
        pos = {f: i for i, f in enumerate(features)}
        request: list[tuple[int, str]] = []
        views: list[_ViewSlot] = []
        for r in reqs:
            if r.view.kind == "request" or r.view.entity is None:
                request += [(pos[f], f) for f in r.features]
                continue
            stored = {f: i for i, f in enumerate(r.view.features)}
            cols = [(pos[f], stored[f], f) for f in r.features]
            views.append(
                _ViewSlot(r.view.name, r.version, r.view.ttl_us, r.view.entity.join_key, cols)
            )
        return cls(features, request, views, {r.view.name: r.version for r in reqs})


def to_datetime(value: Any, name: str = schema.TX_DATETIME) -> datetime:
    """A request timestamp (aware datetime or ISO-8601 string) as a UTC datetime."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationError(f"{name} is not an ISO-8601 time: {value!r}", field=name) from exc
    if not isinstance(value, datetime):
        raise ValidationError(f"{name} must be a datetime, got {type(value).__name__}", field=name)
    if value.tzinfo is None:
        raise ValidationError(f"{name} is naive; give a UTC-aware time", field=name)
    return value.astimezone(UTC)


def _request_feature(feat: str, req: Mapping[str, Any], when: datetime) -> float:
    if feat == schema.TX_AMOUNT:
        try:
            return float(req[schema.TX_AMOUNT])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError("request needs a numeric TX_AMOUNT", field="TX_AMOUNT") from exc
    if feat == "TX_DURING_WEEKEND":
        return float(when.weekday() >= 5)
    return float(when.hour <= 6)


def request_values(
    plan: VectorPlan,
    online: OnlineStore,
    requests: Sequence[Mapping[str, Any]],
    fill: float,
) -> OnlineVectors:
    """Fill the feature matrix of `requests` with one online read."""
    n, f = len(requests), len(plan.features)
    values = np.empty((n, f), dtype=np.float32)
    status: list[dict[str, str]] = [{} for _ in range(n)]
    times: list[datetime] = []
    lookups: list[Lookup] = []
    for req in requests:
        if schema.TX_DATETIME not in req:
            raise ValidationError("request needs TX_DATETIME", field=schema.TX_DATETIME)
        times.append(to_datetime(req[schema.TX_DATETIME]))
        for slot in plan.views:
            try:
                lookups.append((slot.name, slot.version, int(req[slot.key])))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValidationError(
                    f"request needs an integer {slot.key}", field=slot.key
                ) from exc
    records = online.read(lookups) if lookups else []
    nv = len(plan.views)
    for i, req in enumerate(requests):
        when = times[i]
        row, st = values[i], status[i]
        for col, feat in plan.request:
            row[col] = _request_feature(feat, req, when)
            st[feat] = PRESENT
        req_us = (when - _EPOCH) // _US
        for j, slot in enumerate(plan.views):
            rec = records[i * nv + j]
            if rec is None:
                state = MISSING
            elif req_us - rec.event_us > slot.ttl_us:
                state = EXPIRED
            else:
                state = PRESENT
            for col, stored, feat in slot.columns:
                row[col] = rec.values[stored] if state == PRESENT and rec is not None else fill
                st[feat] = state
    return OnlineVectors(list(plan.features), values, status, dict(plan.versions))
