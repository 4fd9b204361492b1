"""Figures from a prediction log read: volume, versions, fraud share, degraded share; and,
joined with the true labels, what a fraud team reads (`outcomes`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class PredictionSummary:
    """What the log says about a stretch of traffic."""

    predictions: int
    by_version: dict[str, int]
    fraud_share: float
    degraded_share: float
    latency_p50_ms: float
    latency_p99_ms: float
    first: str | None
    last: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def summarize(frame: pd.DataFrame, fraud_decision: str = "fraud") -> PredictionSummary:
    """Summarise a frame from `PredictionLog.read`.

    >>> from datetime import UTC, datetime
    >>> frame = pd.DataFrame({
    ...     "ts": pd.to_datetime([datetime(2026, 1, 1, tzinfo=UTC)] * 4),
    ...     "model": ["fraud"] * 4, "version": ["1", "1", "2", "2"],
    ...     "decision": ["fraud", "legit", "legit", "legit"],
    ...     "degraded": [False, False, False, True], "latency_ms": [1.0, 2.0, 3.0, 4.0]})
    >>> s = summarize(frame)
    >>> s.predictions, s.by_version, s.fraud_share, s.degraded_share
    (4, {'fraud/1': 2, 'fraud/2': 2}, 0.25, 0.25)
    """
    if frame.empty:
        return PredictionSummary(0, {}, 0.0, 0.0, 0.0, 0.0, None, None)
    keys = frame["model"].astype(str) + "/" + frame["version"].astype(str)
    latency = frame["latency_ms"].astype(float)
    return PredictionSummary(
        predictions=len(frame),
        by_version={str(k): int(v) for k, v in keys.value_counts().sort_index().items()},
        fraud_share=float((frame["decision"] == fraud_decision).mean()),
        degraded_share=float(frame["degraded"].astype(bool).mean()),
        latency_p50_ms=float(latency.quantile(0.5)),
        latency_p99_ms=float(latency.quantile(0.99)),
        first=frame["ts"].min().isoformat(),
        last=frame["ts"].max().isoformat(),
    )


@dataclass(frozen=True)
class DayCards:
    """One day of replayed traffic as an alert queue sees it."""

    day: str
    transactions: int
    cards_flagged: int
    cards_compromised: int
    cards_caught: int


@dataclass(frozen=True)
class Outcomes:
    """What a fraud team reads: logged decisions joined with the true labels.

    `precision` and `recall` are of the logged decisions (score >= the model's threshold),
    per transaction; None when nothing was flagged, or there was no fraud to catch.
    """

    scored: int
    unlabelled: int
    frauds: int
    flagged: int
    caught: int
    false_alarms: int
    missed: int
    true_fraud_rate: float
    flagged_rate: float
    precision: float | None
    recall: float | None
    caught_eur: float
    missed_eur: float
    threshold: float | None
    alert_budget: int
    days: list[DayCards]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def labelled(frame: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The `/v1/score` rows of a log read joined with their transactions' true labels.

    `labels` has TRANSACTION_ID, CUSTOMER_ID, TX_DATETIME, TX_AMOUNT and TX_FRAUD. A
    transaction logged twice counts once (its first record).
    """
    if frame.empty:
        return pd.DataFrame(
            columns=["transaction_id", "score", "decision", "threshold", *labels.columns]
        )
    rows = frame[(frame["endpoint"] == "score") & frame["transaction_id"].notna()]
    rows = rows.sort_values("ts", kind="stable").drop_duplicates("transaction_id")
    cols = ["transaction_id", "score", "decision", "threshold", "latency_ms"]
    left = rows[cols].astype({"transaction_id": "int64"})
    right = labels.astype({"TRANSACTION_ID": "int64"})
    return left.merge(right, left_on="transaction_id", right_on="TRANSACTION_ID", how="inner")


def outcomes(
    frame: pd.DataFrame,
    labels: pd.DataFrame,
    alert_budget: int = 100,
    fraud_decision: str = "fraud",
) -> Outcomes:
    """Decisions of a log read against the true labels; cards flagged per day vs the budget.

    >>> from datetime import UTC, datetime
    >>> t = pd.Timestamp(datetime(2018, 7, 10, 12, tzinfo=UTC))
    >>> log = pd.DataFrame({"ts": [t] * 3, "endpoint": ["score"] * 3,
    ...     "transaction_id": [1, 2, 3], "score": [0.9, 0.2, 0.7], "threshold": [0.5] * 3,
    ...     "decision": ["fraud", "legit", "fraud"], "latency_ms": [1.0] * 3})
    >>> labels = pd.DataFrame({"TRANSACTION_ID": [1, 2, 3], "CUSTOMER_ID": [7, 8, 9],
    ...     "TX_DATETIME": [t] * 3, "TX_AMOUNT": [100.0, 50.0, 20.0], "TX_FRAUD": [1, 1, 0]})
    >>> o = outcomes(log, labels)
    >>> o.caught, o.false_alarms, o.missed, o.precision, o.recall, o.caught_eur, o.missed_eur
    (1, 1, 1, 0.5, 0.5, 100.0, 50.0)
    >>> o.days[0].cards_flagged, o.days[0].cards_compromised, o.days[0].cards_caught
    (2, 2, 1)
    """
    joined = labelled(frame, labels)
    logged = 0
    if not frame.empty:
        logged = int(frame.loc[frame["endpoint"] == "score", "transaction_id"].nunique())
    fraud = joined["TX_FRAUD"].astype(int).to_numpy() == 1
    flag = (joined["decision"] == fraud_decision).to_numpy()
    amount = joined["TX_AMOUNT"].astype(float).to_numpy()
    n = len(joined)
    caught = int((flag & fraud).sum())
    false_alarms = int((flag & ~fraud).sum())
    missed = int((~flag & fraud).sum())
    days: list[DayCards] = []
    if n:
        day = joined["TX_DATETIME"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d").to_numpy()
        card = joined["CUSTOMER_ID"].to_numpy()
        cards = pd.DataFrame({"day": day, "card": card, "flag": flag, "fraud": fraud})
        per_card = cards.groupby(["day", "card"]).agg(flag=("flag", "max"), fraud=("fraud", "max"))
        per_day = per_card.groupby(level="day").agg(
            flagged=("flag", "sum"), compromised=("fraud", "sum")
        )
        per_day["caught"] = (per_card["flag"] & per_card["fraud"]).groupby(level="day").sum()
        count = cards.groupby("day").size().to_dict()
        days = [
            DayCards(str(d), int(count[str(d)]), int(r.flagged), int(r.compromised), int(r.caught))
            for d, r in per_day.iterrows()
        ]
    thresholds = joined["threshold"].astype(float)
    return Outcomes(
        scored=n,
        unlabelled=logged - n,
        frauds=int(fraud.sum()),
        flagged=int(flag.sum()),
        caught=caught,
        false_alarms=false_alarms,
        missed=missed,
        true_fraud_rate=float(fraud.mean()) if n else 0.0,
        flagged_rate=float(flag.mean()) if n else 0.0,
        precision=caught / (caught + false_alarms) if caught + false_alarms else None,
        recall=caught / (caught + missed) if caught + missed else None,
        caught_eur=round(float(amount[flag & fraud].sum()), 2),
        missed_eur=round(float(amount[~flag & fraud].sum()), 2),
        threshold=float(thresholds.median()) if n else None,
        alert_budget=alert_budget,
        days=days,
    )
