"""Debugging an incident: what changed in a window of the prediction log, and since when.

`incident(registry, frame, start, end, labels)` compares the window [start, end) with the
window of the same length just before it (`frame` holds both), and says:

- which model versions (and variants) served in each;
- the inputs: each version's per-feature drift against its reference profile
  (`mlsd.monitoring.drift`) and against the window before, in the same bins, ranked;
- the outputs: score quantiles, flag rate, confidence (max(p, 1 - p)), the share of
  scores near the threshold (odds within a factor 2 of its odds: the decisions a small
  shift would flip), and the score's PSI against the window before;
- latency percentiles;
- whether labels confirm it: AUC and AP (`mlsd.training.metrics`) of each window on the
  labels known at the evaluation time.

Every part states its own "no data" (an empty window before, a version the registry does
not know, one registered without a profile, no label yet, labels of one class): the
report is still written, and says why a figure is absent. Nothing is NaN.
`mlsd.monitoring.report_files.write_incident` writes it as Markdown, JSON and PNG plots.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from mlsd.errors import NotFoundError, ValidationError
from mlsd.monitoring import divergence as dv
from mlsd.monitoring.binning import BinnedWindow
from mlsd.monitoring.drift import severity
from mlsd.monitoring.window import NoDataError, ProfileSource, feature_matrix
from mlsd.predlog.summary import labelled
from mlsd.registry.profile import MissingProfileError, ReferenceProfile

SHADOW_SUFFIX = ":shadow"
#: A score is near its threshold when its odds are within this factor of the threshold's:
#: scale-free, so it means the same at a threshold of 0.5 and of 0.01.
NEAR_ODDS = 2.0
TOP_FEATURES = 15


@dataclass(frozen=True)
class Outputs:
    """The answered predictions of one window: volume, latency, scores and decisions."""

    predictions: int
    versions: dict[str, int]
    variants: dict[str, int]
    latency_ms: dict[str, float]
    score: dict[str, float]
    flag_rate: float
    confidence: float
    near_threshold: float


@dataclass(frozen=True)
class LabelCheck:
    """AUC and AP of one window on the labels known at the evaluation time."""

    scored: int
    labelled: int
    frauds: int
    auc_roc: float | None
    average_precision: float | None
    precision: float | None
    recall: float | None
    state: str


@dataclass(frozen=True)
class FeatureMove:
    """One feature of one version: PSI against the reference and against the window before."""

    name: str
    #: None for a version without a reference profile.
    psi_reference: float | None
    psi_before: float | None
    #: By PSI against the reference, or against the window before without a profile.
    severity: str


@dataclass(frozen=True)
class VersionDrift:
    """A version's input drift in the window, or why there is none."""

    model: str
    version: str
    rows: int
    state: str
    features: list[FeatureMove] = field(default_factory=list)
    score_psi: float | None = None
    joint_psi: float | None = None
    rows_before: int = 0

    def noise_floor(self) -> dict[str, float | None]:
        """PSI that sampling alone gives over 10 bins at these sizes, (k - 1)(1/n + 1/m):
        a figure near it is noise, not drift."""
        vs_before = 9 * (1 / self.rows + 1 / self.rows_before) if self.rows_before else None
        return {"reference": 9 / self.rows if self.rows else None, "before": vs_before}


@dataclass(frozen=True)
class IncidentReport:
    """What changed in [start, end) against [before, start)."""

    start: datetime
    end: datetime
    before: datetime
    as_of: datetime | None
    window: Outputs
    previous: Outputs | None
    score_psi_before: float | None
    drift: list[VersionDrift]
    labels: LabelCheck | None
    labels_before: LabelCheck | None
    findings: list[str]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        out = asdict(self)
        for key in ("start", "end", "before", "as_of"):
            out[key] = None if out[key] is None else out[key].isoformat()
        return out


def _answered(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame[~frame["variant"].astype(str).str.endswith(SHADOW_SUFFIX)]


def outputs(frame: pd.DataFrame, fraud_decision: str = "fraud") -> Outputs | None:
    """The figures of one window's log rows (None when it holds no answered row)."""
    answered = _answered(frame)
    if answered.empty:
        return None
    keys = frame["model"].astype(str) + "/" + frame["version"].astype(str)
    score = answered["score"].to_numpy(dtype=np.float64)
    score = score[np.isfinite(score)]
    latency = frame["latency_ms"].to_numpy(dtype=np.float64)
    threshold = answered["threshold"].to_numpy(dtype=np.float64)
    near = np.abs(_logit(answered["score"].to_numpy(dtype=np.float64)) - _logit(threshold))
    near = near <= np.log(NEAR_ODDS)
    q = [0.5, 0.9, 0.99]
    return Outputs(
        predictions=len(answered),
        versions={str(k): int(v) for k, v in keys.value_counts().sort_index().items()},
        variants={str(k): int(v) for k, v in frame["variant"].value_counts().sort_index().items()},
        latency_ms=dict(
            zip(("p50", "p95", "p99"), _quantiles(latency, [0.5, 0.95, 0.99]), strict=True)
        ),
        score={
            "mean": float(score.mean()) if score.size else 0.0,
            **dict(zip(("p50", "p90", "p99"), _quantiles(score, q), strict=True)),
        },
        flag_rate=float((answered["decision"] == fraud_decision).mean()),
        confidence=float(np.maximum(score, 1.0 - score).mean()) if score.size else 0.0,
        near_threshold=float(near.mean()),
    )


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-9, 1 - 1e-9)
    out: np.ndarray = np.log(q / (1 - q))
    return out


def _quantiles(values: np.ndarray, q: list[float]) -> list[float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [0.0] * len(q)
    return [float(v) for v in np.quantile(finite, q)]


def label_check(frame: pd.DataFrame, labels: pd.DataFrame | None) -> LabelCheck | None:
    """AUC / AP of a window's answered rows on `labels` (already cut to those known)."""
    from mlsd.data import schema
    from mlsd.training.metrics import evaluate

    answered = _answered(frame)
    if labels is None or answered.empty:
        return None
    scored = int(answered["transaction_id"].notna().sum())
    joined = labelled(answered, labels)
    n, frauds = len(joined), int(joined[schema.TX_FRAUD].astype(int).sum()) if len(joined) else 0
    flag = (joined["decision"] == "fraud").to_numpy() if n else np.zeros(0, dtype=bool)
    fraud = joined[schema.TX_FRAUD].astype(int).to_numpy() == 1 if n else flag
    caught = int((flag & fraud).sum())
    precision = caught / int(flag.sum()) if flag.any() else None
    recall = caught / frauds if frauds else None

    def check(state: str, auc: float | None = None, ap: float | None = None) -> LabelCheck:
        return LabelCheck(scored, n, frauds, auc, ap, precision, recall, state)

    if n == 0:
        state = "no label known yet" if scored else "no prediction carries a transaction id"
        return check(state)
    if frauds in (0, n):
        state = f"the {n:,} labels known are all of one class: AUC and AP undefined"
        return check(state)
    scores = joined["score"].to_numpy(dtype=np.float64)
    keep = np.isfinite(scores)
    metrics = evaluate(joined[keep], scores[keep])
    return check("ok", metrics["auc_roc"], metrics["average_precision"])


def _counts(profile: ReferenceProfile, rows: pd.DataFrame) -> BinnedWindow:
    X = feature_matrix(rows, profile.feature_names)
    return BinnedWindow(profile).add(X, rows["score"].to_numpy(dtype=np.float64))


def _with_unseen(counts: np.ndarray, unseen: int, kind: str) -> np.ndarray:
    return np.append(counts, unseen) if kind == "categorical" else counts


def version_drift(
    registry: ProfileSource, rows: pd.DataFrame, before: pd.DataFrame, model: str, version: str
) -> VersionDrift:
    """One version's drift in a window against its profile and the window before."""
    from mlsd.monitoring.drift import compare

    only = "drift against the window before only" if len(before) else "no drift figures"
    try:
        mv = registry.get(model, int(version))
    except (NotFoundError, ValueError):
        state = f"unknown to the registry, so no reference profile: {only}"
        return VersionDrift(model, version, len(rows), state, _moves_vs_before(rows, before))
    try:
        profile = registry.reference_profile(mv)
    except MissingProfileError:
        state = f"registered without a reference profile (an older version): {only}"
        return VersionDrift(model, version, len(rows), state, _moves_vs_before(rows, before))
    window = _counts(profile, rows)
    report = compare(window, model=model, version=mv.version)
    earlier = _counts(profile, before) if len(before) else None
    moves = []
    for j, f in enumerate(report.features):
        vs_before = None
        if earlier is not None:
            kind = profile.features[j].kind
            vs_before = dv.psi(
                _with_unseen(earlier.counts[j], int(earlier.unseen[j]), kind),
                _with_unseen(window.counts[j], int(window.unseen[j]), kind),
            )
        moves.append(FeatureMove(f.name, f.psi, vs_before, f.severity))
    moves.sort(key=lambda m: max(m.psi_reference or 0.0, m.psi_before or 0.0), reverse=True)
    return VersionDrift(
        model, version, len(rows), "ok", moves,
        None if report.score is None else report.score.psi,
        None if report.multivariate is None else report.multivariate.psi,
    )  # fmt: skip


def _moves_vs_before(rows: pd.DataFrame, before: pd.DataFrame) -> list[FeatureMove]:
    """Without a profile: each logged feature's PSI at the window before's deciles."""
    from mlsd.stats import psi

    if before.empty or rows.empty:
        return []
    names = sorted({str(k) for f in rows["features"].head(200) for k in f})
    now, then = feature_matrix(rows, names), feature_matrix(before, names)
    moves = []
    for j, name in enumerate(names):
        a, b = then[:, j], now[:, j]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if a.size >= 10 and b.size >= 10:
            value = psi(a, b)
            moves.append(FeatureMove(name, None, value, severity(value)))
    return sorted(moves, key=lambda m: m.psi_before or 0.0, reverse=True)


def _score_psi(now: pd.DataFrame, then: pd.DataFrame) -> float | None:
    a = _answered(then)["score"].to_numpy(dtype=np.float64)
    b = _answered(now)["score"].to_numpy(dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 10 or b.size < 10:
        return None
    edges = np.unique(np.quantile(a, np.linspace(0.1, 0.9, 9)))
    count = [np.bincount(np.searchsorted(edges, x), minlength=edges.size + 1) for x in (a, b)]
    return dv.psi(count[0], count[1])


def incident(
    registry: ProfileSource,
    frame: pd.DataFrame,
    start: datetime,
    end: datetime,
    labels: pd.DataFrame | None,
    *,
    as_of: datetime | None = None,
) -> IncidentReport:
    """The report of [start, end) against the window of the same length before it.

    `frame` is a log read of [start - (end - start), end); `labels` the transactions with
    labels known at `as_of` (None: no labels at hand). NoDataError when the window holds
    no answered prediction.
    """
    if end <= start:
        raise ValidationError(f"the window ends ({end}) before it starts ({start})", field="to")
    before = start - (end - start)
    ts = frame["ts"] if not frame.empty else pd.Series(dtype="datetime64[us, UTC]")
    now = frame[(ts >= start) & (ts < end)] if not frame.empty else frame
    then = frame[(ts >= before) & (ts < start)] if not frame.empty else frame
    window = outputs(now)
    if window is None:
        raise NoDataError(f"no answered prediction logged in {start} .. {end}", field="window")
    previous = outputs(then)
    drift = []
    for (model, version), rows in now.groupby(["model", "version"], sort=False):
        earlier = then[(then["model"] == model) & (then["version"] == version)]
        found = version_drift(registry, rows, earlier, str(model), str(version))
        drift.append(dataclasses.replace(found, rows_before=len(earlier)))
    drift.sort(key=lambda d: d.rows, reverse=True)
    report = IncidentReport(
        start=start, end=end, before=before, as_of=as_of, window=window, previous=previous,
        score_psi_before=_score_psi(now, then), drift=drift,
        labels=label_check(now, labels), labels_before=label_check(then, labels), findings=[],
    )  # fmt: skip
    report.findings.extend(findings(report))
    return report


def findings(r: IncidentReport) -> list[str]:
    """The answer first: one line per part, in measured numbers."""
    out = []
    w, p = r.window, r.previous
    if p is None:
        out.append(f"{w.predictions:,} predictions; the window before holds none: "
                   "no before/after comparison")  # fmt: skip
    else:
        new = sorted(set(w.versions) - set(p.versions))
        gone = sorted(set(p.versions) - set(w.versions))
        change = f"new: {', '.join(new)}" if new else "no new version"
        if gone:
            change += f"; gone: {', '.join(gone)}"
        out.append(f"versions: {', '.join(w.versions)} ({change})")
        psi = r.score_psi_before
        shift = "" if psi is None else f" (score PSI vs before {psi:.3f}, {severity(psi)})"
        out.append(f"volume {p.predictions:,} -> {w.predictions:,}; flag rate "
                   f"{p.flag_rate:.2%} -> {w.flag_rate:.2%}; mean score {p.score['mean']:.4f} -> "
                   f"{w.score['mean']:.4f}{shift}")  # fmt: skip
        out.append(f"latency p50 {p.latency_ms['p50']:.1f} -> {w.latency_ms['p50']:.1f} ms, p99 "
                   f"{p.latency_ms['p99']:.1f} -> {w.latency_ms['p99']:.1f} ms")  # fmt: skip
    for d in r.drift:
        name = f"{d.model}/{d.version}"
        moved = [f for f in d.features if f.severity != "stable"]
        top = d.features[0] if d.features else None
        if d.state != "ok":
            out.append(f"inputs of {name}: {d.state}")
        elif moved:
            listed = ", ".join(f"{f.name} (PSI {f.psi_reference or 0.0:.3f})" for f in moved[:5])
            out.append(f"inputs of {name}: {len(moved)} feature(s) drifted against the "
                       f"reference: {listed}")  # fmt: skip
        elif top is not None:
            out.append(f"inputs of {name}: no feature drifted (largest PSI {top.name} "
                       f"{top.psi_reference or 0.0:.3f})")  # fmt: skip
        since = [f for f in d.features if f.psi_before is not None]
        if since:
            most = max(since, key=lambda f: f.psi_before or 0.0)
            out.append(f"moved most since the window before ({name}): {most.name} "
                       f"(PSI {most.psi_before:.3f})")  # fmt: skip
    out.append(_label_line("labels", r.labels, r.labels_before))
    return out


def _label_line(what: str, now: LabelCheck | None, then: LabelCheck | None) -> str:
    if now is None:
        return f"{what}: none given (--labels)"
    if now.auc_roc is None or now.average_precision is None:
        return f"{what}: {now.state} ({now.labelled:,} of {now.scored:,} labelled)"
    line = (f"{what}: AUC {now.auc_roc:.3f}, AP {now.average_precision:.3f} on "
            f"{now.labelled:,} labelled ({now.frauds:,} frauds)")  # fmt: skip
    if then is not None and then.auc_roc is not None and then.average_precision is not None:
        line += f"; before: AUC {then.auc_roc:.3f}, AP {then.average_precision:.3f}"
    return line
