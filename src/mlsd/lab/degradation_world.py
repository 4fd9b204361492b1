"""One world of the `silent-degradation` lab: a scenario injected, a model, its prediction
log, and every monitor's value per day, computed by the monitoring code the CLI runs.

Days (full and quick alike; quick has fewer customers):

- 0..34: the model's training (0..27) and threshold (28..34) days (`lab.world.train_model`);
- 35..41: the reference week: the profile (features and scores), the calibration of the
  label-free estimate (isotonic on these days' labels) and the reference AUC;
- 42..END: served: every prediction logged to a real Parquet prediction log (features,
  score, decision, version, variant, transaction and customer ids, transaction time);
  the scenario starts on `CHANGE_DAY` (50); 42..49 is the quiet period.

Monitors per daily window, read back from the log:

- input drift: the largest feature PSI against the profile (the calendar feature
  `TX_DURING_WEEKEND` left out: a single day is all weekend or none of it);
- score drift: the score's PSI;

  both fire above `NOISE_FACTOR` x the largest PSI of a reference day against a profile
  of the other six (leave one day out: the day-to-day noise of a window this size);
- label-free estimate: CBPE's AUC from the calibrated scores (`mlsd.monitoring.cbpe`);
- delayed labels: the true AUC of each window, evaluated every `EVAL_HOURS` with the
  labels landed by then (`performance_windows`, `as_of`), and the `auc_drop` trigger rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.errors import ValidationError
from mlsd.lab.world import build_world, train_model
from mlsd.monitoring.binning import BinnedWindow
from mlsd.monitoring.cbpe import estimate
from mlsd.monitoring.drift import compare
from mlsd.monitoring.performance import DatasetLabels, Reference, performance_windows
from mlsd.monitoring.triggers import TriggerRule, check
from mlsd.monitoring.window import feature_matrix
from mlsd.predlog import ParquetPredictionLog, ParquetPredictionReader, PredictionRecord
from mlsd.registry.profile import ReferenceProfile, build_profile

CHANGE_DAY = 50
REFERENCE = (35, 42)
N_DAYS = 67
EVAL_HOURS = 24
CALENDAR = ("TX_DURING_WEEKEND",)
LABEL_RULE = TriggerRule("auc_drop", "auc", max_drop=0.05)
ESTIMATE_RULE = TriggerRule("estimated_auc_drop", "estimated_auc", max_drop=0.05,
                            min_coverage=0.0, min_frauds=0)  # fmt: skip
NOISE_FACTOR = 1.5


@dataclass
class Day:
    """One daily window's monitor values."""

    day: int
    rows: int
    frauds: int
    input_psi: float
    input_feature: str
    score_psi: float
    estimated_auc: float | None
    true_auc: float | None


@dataclass
class Timeline:
    """A scenario's days, reference figures and label-monitor alarms."""

    scenario: str
    days: list[Day]
    reference_auc: float
    reference_estimated_auc: float | None
    input_threshold: float
    score_threshold: float
    label_alarms: list[tuple[float, int]] = field(default_factory=list)
    """(hours since day 0 when the trigger fired, window day) for each window that fired."""


class _ReadOnce:
    """The log read back once (the monitors below look at it ~50 times)."""

    def __init__(self, reader: ParquetPredictionReader) -> None:
        self.frame = reader.read()

    def read(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        ts = self.frame["ts"]
        keep = np.ones(len(ts), dtype=bool)
        if start is not None:
            keep &= (ts >= pd.Timestamp(start)).to_numpy()
        if end is not None:
            keep &= (ts < pd.Timestamp(end)).to_numpy()
        return self.frame[keep]


class _References:
    def __init__(self, reference: Reference) -> None:
        self.ref = reference

    def reference(self, model: str, version: int) -> Reference:
        return self.ref


def _events(scenario: str, n_customers: int) -> list[dict[str, Any]]:
    from mlsd.monitoring.delay import scenario_config

    if scenario == "quiet":
        return []
    config = scenario_config(scenario, n_customers=n_customers, n_days=N_DAYS,
                             change_day=CHANGE_DAY)  # fmt: skip
    return [e.model_dump(mode="json") for e in config.scenarios]


def _log(path: Path, rows: pd.DataFrame, X: np.ndarray, scores: np.ndarray, names: list[str],
         threshold: float) -> None:  # fmt: skip
    """Log `rows` as served predictions (at their transaction time) to a Parquet log."""
    log = ParquetPredictionLog(path, compact_every_s=None, journal=False)
    when = rows[schema.TX_DATETIME].dt.to_pydatetime()
    records = [
        PredictionRecord(
            request_id=f"t{tid}",
            ts=ts,
            model="fraud",
            version="1",
            features=X[i],
            feature_names=names,
            score=float(scores[i]),
            decision="fraud" if scores[i] >= threshold else "legit",
            threshold=threshold,
            latency_ms=0.0,
            variant="champion",
            transaction_id=int(tid),
            customer_id=int(c),
            terminal_id=int(t),
            tx_time=ts,
        )
        for i, (tid, c, t, ts) in enumerate(
            zip(
                rows[schema.TRANSACTION_ID],
                rows[schema.CUSTOMER_ID],
                rows[schema.TERMINAL_ID],
                when,
                strict=True,
            )
        )
    ]
    log.append(records)
    log.close()


def _drift(
    profile: ReferenceProfile, X: np.ndarray, scores: np.ndarray
) -> tuple[float, str, float]:
    """The largest non-calendar feature PSI, its feature, and the score PSI."""
    report = compare(BinnedWindow(profile).add(X, scores), model="fraud", version=1)
    features = [f for f in report.features if f.name not in CALENDAR]
    top = max(features, key=lambda f: f.psi)
    return top.psi, top.name, 0.0 if report.score is None else report.score.psi


def _noise(world: Any, model: Any, ref: pd.DataFrame) -> tuple[float, float]:
    """The largest input and score PSI of one reference day against the other six."""
    worst_input = worst_score = 0.0
    day = ref[schema.TX_TIME_DAYS].to_numpy()
    for d in np.unique(day):
        rest, one = world.matrix(ref[day != d]), world.matrix(ref[day == d])
        profile = build_profile(rest, world.features, scores=model.scores(rest))
        psi, _, score_psi = _drift(profile, one, model.scores(one))
        worst_input, worst_score = max(worst_input, psi), max(worst_score, score_psi)
    return worst_input, worst_score


def run_world(scenario: str, workdir: Path, n_customers: int, seed: int) -> Timeline:
    """Simulate `scenario`, train, log days 42.., and compute every monitor per day."""
    from sklearn.metrics import roc_auc_score

    world = build_world(workdir, n_customers, 2 * n_customers, N_DAYS,
                        _events(scenario, n_customers), seed)  # fmt: skip
    model = train_model(world, "fraud", 0, REFERENCE[0] - 1, seed=seed)
    ref = world.days(REFERENCE[0], REFERENCE[1] - 1)
    ref_scores = model.scores(world.matrix(ref))
    ref_labels = ref[schema.TX_FRAUD].to_numpy()
    profile = build_profile(world.matrix(ref), world.features, scores=ref_scores,
                            labels=ref_labels, source=f"days {REFERENCE}")  # fmt: skip
    if profile.calibration is None:
        raise ValidationError("the reference week holds no fraud: use more customers",
                              field="n_customers")  # fmt: skip
    own = estimate(profile.calibration, ref_scores).auc or 0.0
    reference = Reference(profile.calibration, model.threshold,
                          {"auc": float(roc_auc_score(ref_labels, ref_scores)),
                           "estimated_auc": own})  # fmt: skip
    served = world.days(REFERENCE[1], N_DAYS - 1)
    X = world.matrix(served)
    scores = model.scores(X)
    path = workdir / "predictions"
    _log(path, served, X, scores, world.features, model.threshold)
    stored = ParquetPredictionReader(path)
    reader = _ReadOnce(stored)
    stored.close()
    labels = DatasetLabels(workdir / "dataset")
    refs = _References(reference)
    start = day_start(world, REFERENCE[1])
    logged = reader.read().copy()
    logged["day"] = ((logged["ts"] - pd.Timestamp(day_start(world, 0))).dt.days).astype(int)
    # every label landed: the truth of each window, for the plot and the estimate's error
    final = {
        r.start: r
        for _, _, rs in performance_windows(
            refs, reader, labels, start, day_start(world, N_DAYS), timedelta(days=1),
            as_of=day_start(world, N_DAYS + 30), top_k=5,
        )
        for r in rs
    }  # fmt: skip
    days = []
    for d in range(REFERENCE[1], N_DAYS):
        rows = logged[logged["day"] == d]
        psi, name, score_psi = _drift(profile, feature_matrix(rows, profile.feature_names),
                                      rows["score"].to_numpy(dtype=np.float64))  # fmt: skip
        truth = final.get(day_start(world, d))
        days.append(Day(d, len(rows), 0 if truth is None else truth.frauds, psi, name, score_psi,
                        estimate(profile.calibration, rows["score"].to_numpy()).auc,
                        None if truth is None else truth.auc))  # fmt: skip
    noise = _noise(world, model, ref)
    metrics = reference.metrics
    timeline = Timeline(scenario, days, metrics["auc"], metrics["estimated_auc"],
                        NOISE_FACTOR * noise[0], NOISE_FACTOR * noise[1])  # fmt: skip
    fired: set[int] = set()
    t = start
    while t <= day_start(world, N_DAYS):
        looked = performance_windows(
            refs, reader, labels, max(start, t - timedelta(days=9)), t, timedelta(days=1),
            as_of=t, top_k=5,
        ) if t > start else []  # fmt: skip
        for _, _, rs in looked:
            for r in rs:
                d = (r.start - day_start(world, 0)).days
                if d not in fired and check(LABEL_RULE, r) is not None:
                    fired.add(d)
                    hours = (t - day_start(world, 0)).total_seconds() / 3600
                    timeline.label_alarms.append((hours, d))
        t += timedelta(hours=EVAL_HOURS)
    return timeline


def day_start(world: Any, day: int) -> datetime:
    """Midnight UTC of simulated day `day` (the world's transactions start on day 0)."""
    first = pd.Timestamp(world.frame[schema.TX_DATETIME].min()).normalize()
    return (first + pd.Timedelta(days=day)).to_pydatetime().astimezone(UTC)
