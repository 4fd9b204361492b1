"""`FeatureStore`: one object over the definitions registry, offline store and online store.

This is the API training, serving, streaming and the demo call. Everything embedded lives
under `settings.home / "features"`; Redis and PostgreSQL are chosen by URL in settings.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlsd.backends import Opening, open_backend
from mlsd.data import schema
from mlsd.errors import ConflictError, NotFoundError, ValidationError
from mlsd.features import materialize as mat
from mlsd.features.consistency import (
    ParityReport,
    SkewReport,
    live_parity,
    replay_parity,
    skew_report,
)
from mlsd.features.definitions import FeatureView
from mlsd.features.handbook import HANDBOOK_VIEWS
from mlsd.features.offline import (
    OfflineStore,
    ViewRequest,
    as_of,
    point_in_time_join,
    request_columns,
)
from mlsd.features.online import OnlineStore, SqliteOnlineStore, WriteBatch
from mlsd.features.pipeline import connect, view_source_sql, write_offline
from mlsd.features.registry import DefinitionRegistry, SqliteDefinitionRegistry
from mlsd.features.source import dataset_identity, write_source
from mlsd.features.vectors import OnlineVectors, VectorPlan, request_values
from mlsd.settings import Settings, get_settings


@dataclass
class BuildReport:
    """What `build` wrote: rows per view, the versions, the time taken."""

    rows: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def open_online(settings: Settings, timeout: float = 1.0, subspace: str = "") -> OnlineStore:
    """The online store `settings.online_store` names ('' = SQLite in home), keyed under
    `{settings.redis_prefix}fs:` on Redis (`subspace` appended: a scratch store)."""
    store = open_backend("online_store", settings, subspace=subspace, timeout=timeout)
    return cast(OnlineStore, store)


def describe_online(settings: Settings) -> str:
    """Which online store `settings` names, for messages: the SQLite file or the Redis URL."""
    url = settings.online_store
    if not url:
        return f"SQLite {settings.path('features', 'online.sqlite').resolve()}"
    from urllib.parse import urlsplit

    from mlsd.backends import key_prefix

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    prefix = key_prefix(settings, "online_store")
    return f"Redis {parts.scheme}://{host}{port}{parts.path} (prefix {prefix!r})"


def open_registry(settings: Settings) -> DefinitionRegistry:
    """The definitions registry `settings.feature_registry` names ('' = SQLite in home)."""
    return cast(DefinitionRegistry, open_backend("feature_registry", settings))


def sqlite_online(o: Opening, *, timeout: float = 1.0) -> OnlineStore:
    """The embedded online store: SQLite in `home/features`."""
    path = o.settings.path("features", "online.sqlite")
    return SqliteOnlineStore(path, timeout=o.url.timeout(timeout))


def redis_online(o: Opening, *, timeout: float = 1.0) -> OnlineStore:
    """The online store on Redis, under its key namespace."""
    from mlsd.features.online_redis import RedisOnlineStore

    return RedisOnlineStore(o.url.dsn, prefix=o.key_prefix, timeout=o.url.timeout(timeout))


def sqlite_registry(o: Opening) -> DefinitionRegistry:
    """The embedded definitions registry: SQLite in `home/features`."""
    return SqliteDefinitionRegistry(o.settings.path("features", "registry.sqlite"))


def postgres_registry(o: Opening) -> DefinitionRegistry:
    """The definitions registry on PostgreSQL, in the URL's `?schema=` (default public)."""
    from mlsd.features.registry_postgres import PostgresDefinitionRegistry

    return PostgresDefinitionRegistry(
        o.url.dsn, schema=o.url.schema or "public", connect_timeout=o.url.timeout(10.0)
    )


class FeatureStore:
    """Definitions, offline tables and the online store of one mlsd installation."""

    def __init__(
        self,
        settings: Settings,
        registry: DefinitionRegistry,
        online: OnlineStore,
        offline: OfflineStore,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.online = online
        self.offline = offline
        self._views: dict[str, FeatureView] = {}
        self._plans: dict[tuple[object, ...], VectorPlan] = {}
        self._refresh()

    @classmethod
    def open(cls, settings: Settings | None = None, *, read_timeout: float = 1.0) -> FeatureStore:
        """Open the store configured by `settings` (default: the process settings).

        `read_timeout` is the online store's default; `?timeout_ms=` in its URL wins.
        """
        settings = settings or get_settings()
        registry = open_registry(settings)
        try:
            online = open_online(settings, read_timeout)
        except BaseException:
            registry.close()
            raise
        return cls(settings, registry, online, OfflineStore(settings.path("features", "offline")))

    def close(self) -> None:
        """Release the registry and online store connections."""
        self.online.close()
        self.registry.close()

    def _refresh(self) -> None:
        self._views = {
            name: self.registry.get(name, v) for name, v in self.registry.current().items()
        }
        self._plans.clear()

    # definitions -------------------------------------------------------------------------

    def apply(self, views: Sequence[FeatureView] = HANDBOOK_VIEWS) -> dict[str, str]:
        """Validate and register the definitions (default: the handbook's); name -> version.

        Every view is checked against its source's columns first (`mlsd.features.repo`):
        a bad one raises ValidationError naming the view and field, and nothing is applied.
        """
        from mlsd.features.repo import validate

        validate(list(views))
        out = self.registry.apply(list(views))
        self._refresh()
        return out

    def apply_path(self, path: Path) -> dict[str, str]:
        """Import a definitions folder (or file) of Python code, validate it, register it
        in one transaction (`mlsd.features.repo`); view name -> version."""
        from mlsd.features.repo import check_repo

        return self.apply(check_repo(Path(path)).views)

    def refresh(self) -> dict[str, str]:
        """Re-read the current versions from the registry (another process applied)."""
        self._refresh()
        return self.view_versions()

    def view_versions(self) -> dict[str, str]:
        """The versions currently served, by view name."""
        return {name: view.version for name, view in self._views.items()}

    def _view(self, name: str, version: str | None = None) -> FeatureView:
        if version is None or (name in self._views and self._views[name].version == version):
            if name not in self._views:
                raise NotFoundError(f"unknown feature view {name!r}; run apply", field="view")
            return self._views[name]
        return self.registry.get(name, version)

    def resolve(
        self, features: Sequence[str], versions: Mapping[str, str] | None = None
    ) -> list[ViewRequest]:
        """Group feature names by the view (and version) that defines them."""
        if not self._views:
            raise NotFoundError("no feature views applied yet; run `features apply`", field="view")
        for name in versions or {}:
            if name not in self._views:
                raise NotFoundError(f"unknown feature view {name!r}", field="versions")
        views = [self._view(n, (versions or {}).get(n)) for n in self._views]
        owners: dict[str, list[FeatureView]] = {}
        for view in views:
            for feat in view.features:
                owners.setdefault(feat, []).append(view)
        owner = {f: vs[0] for f, vs in owners.items()}
        grouped: dict[str, list[str]] = {}
        for feat in features:
            if feat not in owner:
                raise NotFoundError(f"unknown feature {feat!r}", field="features")
            if len(owners[feat]) > 1:
                names = ", ".join(v.name for v in owners[feat])
                raise ConflictError(
                    f"feature {feat!r} is defined by views {names}", field="features"
                )
            grouped.setdefault(owner[feat].name, []).append(feat)
        by_name = {v.name: v for v in views}
        return [ViewRequest(by_name[n], by_name[n].version, tuple(fs)) for n, fs in grouped.items()]

    # offline -----------------------------------------------------------------------------

    def build(self, dataset_dir: Path | None = None) -> BuildReport:
        """Compute every batch view's offline table: from its own source, or from the
        dataset's transactions (`dataset_dir`, needed when a view reads them)."""
        import time

        started = time.perf_counter()
        batch = [v for v in self._views.values() if v.kind != "request"]
        reads_dataset = any(v.event_source.kind == "dataset" for v in batch)
        if reads_dataset and dataset_dir is None:
            raise ValidationError(
                "a feature view reads a dataset's transactions: give the dataset folder",
                field="dataset_dir",
            )
        identity = dataset_identity(Path(dataset_dir)) if dataset_dir is not None else None
        created_us = mat.to_us(datetime.now(UTC))
        report = BuildReport()
        con = connect(self.settings.duckdb_memory_limit, self.settings.duckdb_threads)
        try:
            for view in batch:
                source = view_source_sql(con, view, dataset_dir)
                folder = self.offline.folder(view.name, view.version)
                old = [p for p in folder.glob("part-*.parquet") if "push" not in p.name]
                out = folder / f"part-{created_us}.parquet"
                report.rows[view.name] = write_offline(con, view, source, created_us, out)
                report.versions[view.name] = view.version
                write_source(folder, view.event_source.identity(identity))
                for part in old:  # the new table replaces the old one only once it is written
                    part.unlink()
        finally:
            con.close()
        report.seconds = time.perf_counter() - started
        return report

    def get_training_set(
        self,
        entity_df: pd.DataFrame,
        features: Sequence[str],
        timestamp_column: str = schema.TX_DATETIME,
        versions: Mapping[str, str] | None = None,
    ) -> pd.DataFrame:
        """`entity_df` with the features as of each row's timestamp (point in time)."""
        reqs = self.resolve(features, versions)
        batch = [r for r in reqs if r.view.kind != "request"]
        joined = point_in_time_join(self.offline, entity_df, batch, timestamp_column)
        out = entity_df.copy()
        transforms = [  # each request feature by its view's own definition, in the order asked
            {t.feature: t for t in r.view.transforms}[f]
            for r in reqs
            if r.view.kind == "request"
            for f in r.features
        ]
        if transforms:
            computed = request_columns(entity_df, transforms, timestamp_column)
            for col in computed.columns:
                out[col] = computed[col].to_numpy()
        for col in joined.columns:
            out[col] = joined[col].to_numpy()  # by position: the index may repeat
        return out

    def get_features_as_of(
        self, when: datetime, features: Sequence[str]
    ) -> dict[str, pd.DataFrame]:
        """Time travel: per view, every entity's features as of `when` (within TTL)."""
        return {
            r.view.name: as_of(self.offline, r, when)
            for r in self.resolve(features)
            if r.view.kind != "request"
        }

    # online ------------------------------------------------------------------------------

    def batch_requests(self) -> list[ViewRequest]:
        """Every served batch view, with all its features."""
        return [
            ViewRequest(v, v.version, v.features)
            for v in self._views.values()
            if v.kind != "request"
        ]

    def materialize(
        self,
        end: datetime | None = None,
        progress: mat.Progress | None = None,
        online: OnlineStore | None = None,
        chunk_days: float = 7.0,
        on_switch: mat.OnSwitch = "rebuild",
    ) -> mat.MaterializeReport:
        """Copy the offline rows up to `end` (default: all) into the online store.

        When the online store holds rows of another dataset, `on_switch="rebuild"` clears
        it and starts afresh (the report says why); `"refuse"` raises ConflictError.
        """
        return mat.materialize(
            self.offline,
            online or self.online,
            self.batch_requests(),
            end,
            chunk=int(chunk_days * mat.DAY_US),
            progress=progress,
            on_switch=on_switch,
        )

    def online_watermarks(self) -> dict[str, int | None]:
        """The materialization watermark of each served batch view in the online store
        (None: never materialized there, or lost with the store's data)."""
        return {
            r.view.name: self.online.watermark(r.view.name, r.version)
            for r in self.batch_requests()
        }

    def online_vectors(
        self,
        requests: Sequence[Mapping[str, Any]],
        features: Sequence[str],
        versions: Mapping[str, str] | None = None,
        fill: float = math.nan,
        online: OnlineStore | None = None,
    ) -> OnlineVectors:
        """Feature vectors for scoring requests, in one round trip to the online store.

        Missing and expired values are `fill`: NaN by default, like the offline training
        set; `status` tells which they were. A model's input replaces them with
        `mlsd.features.MISSING_VALUE`, in training and serving alike.
        """
        return request_values(self.vector_plan(features, versions), online or self.online,
                              requests, fill)  # fmt: skip

    def vector_plan(
        self, features: Sequence[str], versions: Mapping[str, str] | None = None
    ) -> VectorPlan:
        """Where each of `features` comes from (resolved once per list, then cached)."""
        key = (tuple(features), tuple(sorted(versions.items())) if versions else ())
        plan = self._plans.get(key)
        if plan is None:
            plan = VectorPlan.make(self.resolve(features, versions), list(features))
            self._plans[key] = plan
        return plan

    def push(self, view: str, rows: pd.DataFrame, to: str = "online") -> int:
        """Write fresh rows of a view from a stream: to 'online', 'offline' or 'both'.

        `rows` has the join key, `event_timestamp` (UTC-aware), the view's features and
        optionally `created_timestamp` (default now). Older rows never overwrite newer ones.
        """
        if to not in ("online", "offline", "both"):
            raise ValidationError("push target must be online, offline or both", field="to")
        fv = self._view(view)
        if fv.entity is None:
            raise ValidationError(f"view {view!r} is computed at request time", field="view")
        key = fv.entity.join_key
        for col in (key, "event_timestamp", *fv.features):
            if col not in rows.columns:
                raise ValidationError(f"pushed rows lack column {col!r}", field=col)
        ev = rows["event_timestamp"]
        if not isinstance(ev.dtype, pd.DatetimeTZDtype):
            raise ValidationError("event_timestamp must be UTC-aware", field="event_timestamp")
        now_us = mat.to_us(datetime.now(UTC))
        created = (
            rows["created_timestamp"].dt.tz_convert("UTC").dt.as_unit("us").astype("int64")
            if "created_timestamp" in rows.columns
            else pd.Series(now_us, index=rows.index)
        )
        event_us = ev.dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()
        values: npt.NDArray[np.float64] = np.ascontiguousarray(
            rows[list(fv.features)].to_numpy(dtype=np.float64)
        )
        if to in ("offline", "both"):
            keys = rows[key].to_numpy(dtype=np.int64)
            created_us = np.asarray(created.to_numpy(), dtype=np.int64)
            keep = _latest_per_event(keys, event_us, created_us)
            table = pd.DataFrame({key: keys[keep]})
            table["event_timestamp"] = pd.to_datetime(event_us[keep], unit="us", utc=True)
            table["created_timestamp"] = pd.to_datetime(created_us[keep], unit="us", utc=True)
            for i, feat in enumerate(fv.features):
                table[feat] = values[keep, i]
            folder = self.offline.folder(fv.name, fv.version)
            folder.mkdir(parents=True, exist_ok=True)
            name = f"part-{now_us}-push-{uuid.uuid4().hex[:8]}.parquet"
            table.to_parquet(folder / name, index=False)
        if to in ("online", "both"):
            batch = WriteBatch(
                fv.name,
                fv.version,
                rows[key].to_numpy(dtype=np.int64),
                event_us,
                np.asarray(created.to_numpy(), dtype=np.int64),
                values,
            )
            self.online.write([batch])
        return len(rows)

    # consistency -------------------------------------------------------------------------

    def describe_online(self) -> str:
        """The online store serving reads, for messages (file or URL, never a password)."""
        return describe_online(self.settings)

    def live_parity(self, sample: int = 200, seed: int = 0) -> ParityReport:
        """Compare the online store serving reads, as it is, with the offline tables."""
        report = live_parity(self, self.online, sample, seed)
        report.store = self.describe_online()
        return report

    def parity(
        self,
        checkpoints: int = 4,
        sample: int = 200,
        start: datetime | None = None,
        end: datetime | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ParityReport:
        """Replay into a scratch store of the configured backend; compare with offline."""
        tag = uuid.uuid4().hex[:8]
        if self.settings.online_store:
            scratch = open_online(self.settings, subspace=f"parity:{tag}:")
        else:
            path = self.settings.path("features", f"parity-{tag}.sqlite")
            scratch = SqliteOnlineStore(path)
        try:
            report = replay_parity(
                self, scratch, start, end, checkpoints, sample, progress=progress
            )
            report.store = f"a scratch copy of {self.describe_online()}, replayed"
            return report
        finally:
            scratch.clear()
            scratch.close()
            if not self.settings.online_store:
                for leftover in self.settings.path("features").glob(f"parity-{tag}.sqlite*"):
                    leftover.unlink()

    def skew(
        self, logged: pd.DataFrame, features: Sequence[str], timestamp_column: str = "TX_DATETIME"
    ) -> SkewReport:
        """Mismatch rate per feature between served (logged) values and offline values."""
        return skew_report(self, logged, features, timestamp_column)


def _latest_per_event(
    keys: npt.NDArray[np.int64], event_us: npt.NDArray[np.int64], created_us: npt.NDArray[np.int64]
) -> npt.NDArray[np.intp]:
    """Positions of the rows a part keeps: per (key, event time) the latest created, and of
    equal created the later row, the one materialization serves. The point-in-time join
    dedups across parts, not inside one, so a tie left in a part would be joined either way.
    """
    order = np.lexsort((created_us, event_us, keys))  # stable: equal rows keep their order
    k, e = keys[order], event_us[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (k[1:] != k[:-1]) | (e[1:] != e[:-1])
    return np.sort(order[last])
