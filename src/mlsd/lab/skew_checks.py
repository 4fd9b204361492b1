"""The checks the `skew` lab runs on served traffic, each as the system runs it, and when
each first fires.

- parity: `mlsd.features.consistency.live_parity` of the online store serving reads (what
  `mlsd features parity --live` runs), on a schedule of replayed time;
- skew report: `mlsd.features.consistency.skew_report` of the served rows of a window
  against the offline point-in-time values of the same entities and times;
- schema: the model signature's check of the served rows (names, dtypes, finite values);
- drift: `mlsd.monitoring.drift.drift` of a window against the version's reference
  profile (`mlsd.registry.profile`): a feature, the score or the joint at major PSI;
- degraded counter: serving's `mlsd_degraded_total` (a row scored without the store);
- feature status: rows served a stored feature missing, expired or from the future (what
  the prediction log records per row, and the demo counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.errors import ValidationError
from mlsd.features import MISSING_VALUE
from mlsd.features.consistency import live_parity, skew_report
from mlsd.features.online import OnlineStore
from mlsd.features.store import FeatureStore
from mlsd.monitoring.drift import drift
from mlsd.registry.profile import ReferenceProfile
from mlsd.registry.signature import Signature

CHECKS = ("parity", "skew report", "schema", "drift", "degraded counter", "feature status")
#: The checks run on each window of served rows.
WINDOWED = ("skew report", "schema", "drift", "feature status")
#: A window's skew report fires when a feature's served values differ from the offline
#: ones on more than this share of its rows.
SKEW_RATE = 0.01
#: The feature-status check fires when more than this share of a window's rows were served
#: a stored feature missing, expired or from the future (a card unseen for 30 days is one
#: such row now and then: an alarm on each would be noise).
NOT_SERVED_RATE = 0.05
NOT_SERVED = ("missing", "expired", "future", "unavailable")
#: Calendar flags: any window shorter than a week drifts on them (a Saturday holds only
#: weekend rows), so the drift check does not read them.
CALENDAR = ("TX_DURING_WEEKEND", "TX_DURING_NIGHT")


@dataclass(frozen=True)
class Firing:
    """When a check first fired: rows of traffic scored by then, and replayed minutes."""

    rows: int
    minutes: float
    why: str


@dataclass
class Traffic:
    """What was served, row by row (time order)."""

    frame: pd.DataFrame  # CUSTOMER_ID, TERMINAL_ID, TX_DATETIME, TX_AMOUNT (as requested)
    values: np.ndarray  # (n, k) float32, served
    scores: np.ndarray
    not_served: np.ndarray  # bool per row: a stored feature missing/expired/future
    degraded: np.ndarray  # bool per row: serving flagged it degraded


def not_served(statuses: dict[str, str]) -> bool:
    """Whether a row's statuses say a stored feature was not served."""
    return any(s in NOT_SERVED for s in statuses.values())


def window_checks(
    store: FeatureStore,
    profile: ReferenceProfile,
    features: Sequence[str],
    traffic: Traffic,
    step: int,
    window: int,
) -> dict[str, Firing | None]:
    """Every `step` served rows, run the row checks on those rows and drift on the last
    `window` (once that many were served); the first firing of each."""
    first: dict[str, Firing | None] = dict.fromkeys(CHECKS[1:], None)
    times = traffic.frame[schema.TX_DATETIME]
    origin = times.iloc[0]
    signature = Signature(list(features), ["float32"] * len(features))
    n = len(traffic.scores)
    for end in range(step, n + 1, step):
        minutes = (times.iloc[end - 1] - origin).total_seconds() / 60.0
        for name in WINDOWED:
            lo = end - (window if name == "drift" else step)
            if first[name] is None and lo >= 0:  # a check that fired is not run again
                why = _window_check(name, store, profile, signature, traffic, lo, end)
                first[name] = None if why is None else Firing(end, minutes, why)
    hit = np.flatnonzero(traffic.degraded)
    if hit.size:
        i = int(hit[0])
        minutes = (times.iloc[i] - origin).total_seconds() / 60.0
        first["degraded counter"] = Firing(i + 1, minutes, "mlsd_degraded_total > 0")
    return first


def _window_check(
    name: str,
    store: FeatureStore,
    profile: ReferenceProfile,
    signature: Signature,
    traffic: Traffic,
    lo: int,
    end: int,
) -> str | None:
    """Why the check `name` fires on rows lo..end (None: it does not)."""
    if name == "skew report":
        return _skew(store, signature.feature_names, traffic, lo, end)
    if name == "schema":
        return _schema(signature, traffic.values[lo:end])
    if name == "drift":
        return _drift(profile, traffic.values[lo:end], traffic.scores[lo:end])
    return _rate(traffic.not_served[lo:end], NOT_SERVED_RATE)


def _rate(flags: np.ndarray, limit: float) -> str | None:
    share = float(flags.mean()) if flags.size else 0.0
    return f"{100 * share:.1f} % of rows not served a stored feature" if share > limit else None


def _skew(
    store: FeatureStore, features: Sequence[str], traffic: Traffic, lo: int, end: int
) -> str | None:
    logged = traffic.frame.iloc[lo:end].reset_index(drop=True).copy()
    for j, name in enumerate(features):
        if name != schema.TX_AMOUNT:  # the request's amount is both input and feature
            logged[name] = traffic.values[lo:end, j].astype(np.float64)
    report = skew_report(store, logged, list(features), fill=MISSING_VALUE)
    worst = max(report.mismatch_rate, key=lambda f: report.mismatch_rate[f])
    rate = report.mismatch_rate[worst]
    return f"{worst} differs on {100 * rate:.0f} % of rows" if rate > SKEW_RATE else None


def _schema(signature: Signature, values: np.ndarray) -> str | None:
    try:
        signature.validate(values)
    except ValidationError as exc:
        return str(exc)
    return None


def _drift(profile: ReferenceProfile, values: np.ndarray, scores: np.ndarray) -> str | None:
    report = drift(profile, values, scores)
    features = [d for d in report.features if d.name not in CALENDAR]
    parts = [*features, report.score, report.multivariate]
    major = [(d.psi, d.name) for d in parts if d is not None and d.severity == "major"]
    if not major:
        return None
    psi, name = max(major)
    return f"{name} PSI {psi:.2f}"


def parity_check(store: FeatureStore, online: OnlineStore, sample: int, seed: int) -> str | None:
    """Why live parity of `online` fails (None: it passes)."""
    report = live_parity(store, online, sample=sample, seed=seed)
    if report.ok:
        return None
    if report.problems:
        return report.problems[0]
    return f"{report.mismatches:,} of {report.compared:,} values differ"
