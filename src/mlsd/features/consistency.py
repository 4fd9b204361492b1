"""Consistency checks: online/offline parity, live or by replay, and training-serving skew.

Live parity checks the online store serving reads, as it is: for sampled entities it
reads every view online at the view's watermark (or at a row's own event time when a
stream pushed it later) and compares with the offline point-in-time join at that time;
it also reports a view never materialized there, or materialized from another dataset.
Replay parity replays a period into a scratch online store: at each checkpoint t it
materializes up to t, reads every sampled entity online at t (TTL applied) and compares
with the offline point-in-time join at t (a test of materialization itself). Skew
compares features as logged at serving time with the offline values for the same
entities and timestamps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlsd.errors import ValidationError
from mlsd.features import materialize as mat
from mlsd.features.offline import ViewRequest, point_in_time_join
from mlsd.features.online import PRESENT, OnlineStore, Record, status_of
from mlsd.features.pipeline import EVENT_TS, connect
from mlsd.features.source import read_source

if TYPE_CHECKING:
    from mlsd.features.store import FeatureStore


@dataclass
class ParityReport:
    """How many (entity, time, feature) values agreed between online and offline."""

    checkpoints: list[datetime] = field(default_factory=list)
    compared: int = 0
    mismatches: int = 0
    examples: list[dict[str, object]] = field(default_factory=list)
    store: str = ""
    """Which online store was checked (the one serving reads, or a scratch replay)."""
    problems: list[str] = field(default_factory=list)
    """What makes the checked store wrong besides values: unmaterialized or foreign views."""

    @property
    def agreement(self) -> float:
        """Share of compared values that agree (1.0 when nothing was compared)."""
        return 1.0 if self.compared == 0 else 1.0 - self.mismatches / self.compared

    @property
    def ok(self) -> bool:
        """No mismatch and no problem."""
        return self.mismatches == 0 and not self.problems


def _compare(
    report: ParityReport,
    req: ViewRequest,
    keys: np.ndarray,
    records: Sequence[Record | None],
    at_us: np.ndarray,
    offline: pd.DataFrame,
) -> None:
    """Count, into `report`, each sampled value online (TTL at `at_us`) against offline."""
    key = req.view.entity.join_key if req.view.entity else ""
    cols = {f: offline[f].to_numpy(dtype=np.float64) for f in req.view.features}
    for i, rec in enumerate(records):
        present = status_of(rec, int(at_us[i]), req.view.ttl_us) == PRESENT
        for j, feat in enumerate(req.view.features):
            off = float(cols[feat][i])
            on = rec.values[j] if present and rec is not None else np.nan
            report.compared += 1
            if (np.isnan(off) and np.isnan(on)) or off == on:
                continue
            report.mismatches += 1
            if len(report.examples) < 10:
                report.examples.append(
                    {
                        "view": req.view.name,
                        key: int(keys[i]),
                        "at": mat.from_us(int(at_us[i])),
                        "feature": feat,
                        "online": float(on),
                        "offline": float(off),
                    }
                )


def _sample_keys(store: FeatureStore, key: str, view: str, n: int, seed: int) -> np.ndarray:
    req = next(r for r in store.batch_requests() if r.view.name == view)
    con = connect()
    table = store.offline.table_sql(req.view, req.version)
    keys = con.execute(f"SELECT DISTINCT {key} FROM ({table})").df()[key].to_numpy(dtype=np.int64)
    con.close()
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(keys, size=min(n, len(keys)), replace=False))


def replay_parity(
    store: FeatureStore,
    scratch: OnlineStore,
    start: datetime | None = None,
    end: datetime | None = None,
    checkpoints: int = 4,
    sample: int = 200,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    clear: bool = True,
) -> ParityReport:
    """Replay (start, end] into `scratch` and compare online with offline at each checkpoint.

    `clear=False` keeps what `scratch` holds (to check a store as it is, not a fresh replay).
    """
    reqs = store.batch_requests()
    if not reqs:
        raise ValidationError("no batch feature views to check", field="view")
    con = connect()
    lo_hi = con.execute(
        " UNION ALL ".join(
            f"SELECT min(epoch_us({EVENT_TS})), max(epoch_us({EVENT_TS})) "
            f"FROM ({store.offline.table_sql(r.view, r.version)})"
            for r in reqs
        )
    ).fetchall()
    con.close()
    first = min(int(r[0]) for r in lo_hi)
    last = max(int(r[1]) for r in lo_hi)
    lo = first if start is None else mat.to_us(start, "start")
    hi = last if end is None else mat.to_us(end, "end")
    if hi <= lo:
        raise ValidationError("parity end must be after its start", field="end")
    if clear:
        scratch.clear()
    times = [lo + (hi - lo) * (i + 1) // checkpoints for i in range(checkpoints)]
    report = ParityReport()
    keysets = {
        r.view.name: _sample_keys(store, r.view.entity.join_key, r.view.name, sample, seed)
        for r in reqs
        if r.view.entity
    }
    for n, t in enumerate(times):
        when = mat.from_us(t)
        store.materialize(end=when, online=scratch)
        report.checkpoints.append(when)
        for r in reqs:
            key = r.view.entity.join_key if r.view.entity else ""
            keys = keysets[r.view.name]
            records = scratch.read([(r.view.name, r.version, int(k)) for k in keys])
            ent = pd.DataFrame({key: keys, "ts": pd.Series([when] * len(keys)).dt.as_unit("us")})
            offline = point_in_time_join(store.offline, ent, [r], "ts")
            _compare(report, r, keys, records, np.full(len(keys), t, dtype=np.int64), offline)
        if progress:
            progress(n + 1, len(times))
    return report


def live_parity(
    store: FeatureStore, online: OnlineStore, sample: int = 200, seed: int = 0
) -> ParityReport:
    """Compare `online` as it is (the store serving reads) with the offline tables.

    Each view is compared at its watermark; a row pushed later is compared at its own
    event time. A view without a watermark is compared at its newest offline row (so
    every value it should hold counts as a mismatch), and reported as a problem, like a
    view whose watermark belongs to another dataset.
    """
    reqs = [r for r in store.batch_requests() if r.view.entity]
    if not reqs:
        raise ValidationError("no batch feature views to check", field="view")
    report = ParityReport()
    for req in reqs:
        key = req.view.entity.join_key if req.view.entity else ""
        mark = online.watermark(req.view.name, req.version)
        source = read_source(store.offline.folder(req.view.name, req.version))
        if mark is None:
            report.problems.append(
                f"{req.view.name}:{req.version} was never materialized into this store "
                "(run `mlsd features materialize`)"
            )
            mark = _last_event(store, req)
        else:
            reason = mat.switched(online, req, source, mark)
            if reason:
                report.problems.append(f"{reason} (run `mlsd features materialize`)")
        keys = _sample_keys(store, key, req.view.name, sample, seed)
        records = online.read([(req.view.name, req.version, int(k)) for k in keys])
        at_us = np.array(
            [max(mark, rec.event_us) if rec is not None else mark for rec in records],
            dtype=np.int64,
        )
        ts = pd.to_datetime(at_us, unit="us", utc=True)
        ent = pd.DataFrame({key: keys, "ts": pd.Series(ts).dt.as_unit("us")})
        offline = point_in_time_join(store.offline, ent, [req], "ts")
        _compare(report, req, keys, records, at_us, offline)
        report.checkpoints.append(mat.from_us(mark))
    return report


def _last_event(store: FeatureStore, req: ViewRequest) -> int:
    con = connect()
    try:
        row = con.execute(
            f"SELECT max(epoch_us({EVENT_TS})) FROM "
            f"({store.offline.table_sql(req.view, req.version)})"
        ).fetchone()
    finally:
        con.close()
    return 0 if row is None or row[0] is None else int(row[0])


@dataclass
class SkewReport:
    """Mismatch rate per feature between served (logged) and offline values."""

    rows: int
    mismatch_rate: dict[str, float]
    max_abs_diff: dict[str, float]


def skew_report(
    store: FeatureStore,
    logged: pd.DataFrame,
    features: Sequence[str],
    timestamp_column: str = "TX_DATETIME",
    fill: float | None = None,
    tolerance: float = 1e-6,
) -> SkewReport:
    """Compare served feature values with the offline as-of values at the same timestamps.

    `fill` is the value serving used for missing/expired features if not NaN (offline NaN
    becomes it before comparing); `tolerance` is relative, because serving logs float32.
    """
    missing = [f for f in features if f not in logged.columns]
    if missing:
        raise ValidationError(f"logged frame lacks features {missing}", field="features")
    # TX_AMOUNT is both a request field and a feature: keep it as the request's input
    base = logged.drop(columns=[f for f in features if f != "TX_AMOUNT"])
    offline = store.get_training_set(base, features, timestamp_column)
    rates, diffs = {}, {}
    for feat in features:
        served = logged[feat].to_numpy(dtype=np.float64)
        truth = offline[feat].to_numpy(dtype=np.float64)
        if fill is not None:
            truth = np.where(np.isnan(truth), fill, truth)
        both_nan = np.isnan(served) & np.isnan(truth)
        close = np.isclose(served, truth, rtol=tolerance, atol=tolerance) | both_nan
        rates[feat] = float(1.0 - close.mean()) if len(close) else 0.0
        gap = np.abs(served - truth)
        diffs[feat] = float(np.nanmax(gap)) if np.isfinite(gap).any() else 0.0
    return SkewReport(len(logged), rates, diffs)
