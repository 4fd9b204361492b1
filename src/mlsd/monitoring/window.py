"""Drift over a time window of the prediction log, one report per model version.

Each logged record names its model, version and variant, and carries the feature
values the version saw. A window may hold several versions (an alias moved, a canary):
each is compared with its own reference profile, since each was trained on its own data.

Bad windows fail loudly: no record in the window (`NoDataError`), a version unknown to
the registry (`NotFoundError`), a version without a profile (`MissingProfileError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlsd.errors import NotFoundError, ValidationError
from mlsd.monitoring.binning import BinnedWindow
from mlsd.monitoring.drift import DriftReport, compare
from mlsd.registry.models import ModelVersion
from mlsd.registry.profile import MissingProfileError, ReferenceProfile


class NoDataError(NotFoundError):
    """A window holds no prediction to compare."""


class ProfileSource(Protocol):
    """What window drift needs from the registry (`mlsd.registry.Registry` has it)."""

    def get(self, name: str, version: int) -> ModelVersion:
        """One version by number."""
        ...

    def reference_profile(self, mv: ModelVersion) -> ReferenceProfile:
        """Its reference profile."""
        ...


class LogReader(Protocol):
    """What window drift needs from the prediction log (`PredictionLogReader`)."""

    def read(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Stored records with start <= ts < end."""
        ...


def feature_matrix(frame: pd.DataFrame, names: Sequence[str]) -> NDArray[np.float64]:
    """The `features` dicts of logged records as a matrix in `names` order (absent -> NaN)."""
    if frame.empty:
        return np.empty((0, len(names)))
    wide = pd.DataFrame.from_records(list(frame["features"]), index=frame.index)
    return wide.reindex(columns=list(names)).to_numpy(dtype=np.float64, na_value=np.nan)


def logged_version(value: Any) -> int:
    """A version as the prediction log holds it (text or number), as an int."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"the prediction log holds version {value!r}, not a number", field="version"
        ) from None


def _select(
    frame: pd.DataFrame, model: str | None, version: int | None
) -> tuple[pd.DataFrame, str]:
    what = "" if model is None else f" of model {model!r}"
    if model is not None and not frame.empty:
        frame = frame[frame["model"] == model]
    if version is not None and not frame.empty:
        frame = frame[frame["version"].astype(str) == str(version)]
        what += f" version {version}"
    return frame, what


def _check_window(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise ValidationError(f"the window ends ({end}) before it starts ({start})", field="to")


def window_drift(
    registry: ProfileSource,
    reader: LogReader,
    start: datetime | None,
    end: datetime | None,
    *,
    model: str | None = None,
    version: int | None = None,
) -> list[DriftReport]:
    """One drift report per (model, version) logged in [start, end), largest first."""
    _check_window(start, end)
    frame, what = _select(reader.read(start, end), model, version)
    if frame.empty:
        raise NoDataError(
            f"no prediction{what} logged in {start or 'the beginning'} .. {end or 'now'}",
            field="window",
        )
    return frame_drift(registry, frame, start, end)


def tumbling_drift(
    registry: ProfileSource,
    reader: LogReader,
    start: datetime,
    end: datetime,
    every: timedelta,
    *,
    model: str | None = None,
    version: int | None = None,
) -> list[tuple[datetime, datetime, list[DriftReport]]]:
    """Drift per tumbling window of `every` over [start, end), read once.

    A window without predictions has an empty list (no data, not an error); a range
    without any is `NoDataError`.
    """
    _check_window(start, end)
    if every <= timedelta(0):
        raise ValidationError("a window must last more than 0 s", field="every")
    if (end - start) / every > MAX_WINDOWS:
        raise ValidationError(
            f"{start} .. {end} by {every} is more than {MAX_WINDOWS} windows", field="every"
        )
    frame, what = _select(reader.read(start, end), model, version)
    if frame.empty:
        raise NoDataError(f"no prediction{what} logged in {start} .. {end}", field="window")
    out = []
    at = start
    while at < end:
        stop = min(at + every, end)
        rows = frame[(frame["ts"] >= at) & (frame["ts"] < stop)]
        out.append((at, stop, frame_drift(registry, rows, at, stop) if len(rows) else []))
        at = stop
    return out


MAX_WINDOWS = 10_000


def frame_drift(
    registry: ProfileSource, frame: pd.DataFrame, start: datetime | None, end: datetime | None
) -> list[DriftReport]:
    """One drift report per (model, version) of logged records, largest first."""
    reports = []
    groups = list(frame.groupby(["model", "version"], sort=False))
    present = ", ".join(f"{n}/{v}" for (n, v), _ in groups)
    for (name, logged), rows in groups:
        mv = registry.get(str(name), logged_version(logged))
        try:
            profile = registry.reference_profile(mv)
        except MissingProfileError as exc:
            if len(groups) == 1:
                raise
            raise MissingProfileError(
                f"{exc.message}; the window holds {present}: pick one with --model/--version",
                field=exc.field,
            ) from None
        X = feature_matrix(rows, profile.feature_names)
        window = BinnedWindow(profile).add(X, rows["score"].to_numpy(dtype=np.float64))
        report = compare(window, model=str(name), version=mv.version, start=start, end=end)
        absent = [n for n in profile.feature_names if not _logged(rows, n)]
        if absent:
            report.notes.append(f"features never logged (counted missing): {absent}")
        reports.append(report)
    return sorted(reports, key=lambda r: r.n_rows, reverse=True)


def _logged(rows: pd.DataFrame, name: str) -> bool:
    return any(name in f for f in rows["features"].head(100))
