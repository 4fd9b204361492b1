"""A labelled scored stream for the performance tests: transactions, scores, labels that
land 7 days later, and a registry version whose profile holds the calibration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from mlsd.data import schema
from mlsd.predlog import PredictionRecord
from mlsd.registry import DecisionThreshold, ModelVersion, Registry
from mlsd.registry.formats import LIGHTGBM_ARTIFACT
from mlsd.registry.profile import PROFILE_ARTIFACT, build_profile, profile_bytes
from mlsd.registry.testing import FEATURES, sample_lineage, sample_signature, tiny_lightgbm

T0 = datetime(2026, 3, 2, tzinfo=UTC)
DELAY = timedelta(days=7)
THRESHOLD = 0.8


@dataclass
class Stream:
    """Scored transactions: one per `every`, ids from `first_id`."""

    frame: pd.DataFrame

    def labels(self) -> pd.DataFrame:
        """The label rows (`LABEL_COLUMNS`)."""
        return self.frame[
            [schema.TRANSACTION_ID, schema.TX_FRAUD, schema.LABEL_AVAILABLE_AT, schema.TX_AMOUNT]
        ]

    def records(self, version: int, variant: str = "champion") -> list[PredictionRecord]:
        """The stream as logged predictions of fraud/`version`."""
        f = self.frame
        return [
            PredictionRecord(
                request_id=f"r{version}-{tid}",
                ts=ts.to_pydatetime(),
                model="fraud",
                version=str(version),
                features=[0.0] * len(FEATURES),
                feature_names=list(FEATURES),
                score=float(s),
                decision="fraud" if s >= THRESHOLD else "legit",
                threshold=THRESHOLD,
                latency_ms=1.0,
                variant=variant,
                transaction_id=int(tid),
                customer_id=int(c),
                terminal_id=0,
                tx_time=ts.to_pydatetime(),
            )
            for tid, ts, s, c in zip(
                f[schema.TRANSACTION_ID],
                f[schema.TX_DATETIME],
                f["score"],
                f[schema.CUSTOMER_ID],
                strict=True,
            )
        ]


def stream(
    n: int, *, seed: int = 0, start: datetime = T0, first_id: int = 0, every_s: float = 60.0,
    concept_drift: float = 0.0, shift: float = 0.0,
) -> Stream:  # fmt: skip
    """Scores ~ Beta(1 + `shift`, 30) (a shift moves them up inside the same range:
    covariate shift, the relation holds), a fraud with probability = score; with
    `concept_drift`, that share of extra frauds whatever the score (new frauds the model
    misses: the scores do not move)."""
    rng = np.random.default_rng(seed)
    score = rng.beta(1.0 + shift, 30.0, size=n)
    fraud = (rng.uniform(size=n) < score).astype(np.int8)
    if concept_drift:
        fraud |= (rng.uniform(size=n) < concept_drift).astype(np.int8)
    ts = pd.Timestamp(start) + pd.to_timedelta(np.arange(n) * every_s, unit="s")
    frame = pd.DataFrame(
        {
            schema.TRANSACTION_ID: np.arange(first_id, first_id + n, dtype=np.int64),
            schema.TX_DATETIME: ts,
            schema.CUSTOMER_ID: rng.integers(0, max(n // 4, 1), size=n),
            schema.TX_AMOUNT: np.round(rng.gamma(2.0, 30.0, size=n), 2),
            schema.TX_FRAUD: fraud,
            schema.LABEL_AVAILABLE_AT: ts + DELAY,
            "score": score,
        }
    )
    return Stream(frame)


def register_calibrated(registry: Registry, reference: Stream) -> ModelVersion:
    """A version whose profile's calibration is fitted on `reference`'s scores and labels."""
    rows = np.zeros((len(reference.frame), len(FEATURES)), dtype=np.float32)
    rows[:, 0] = reference.frame["score"].to_numpy()
    profile = build_profile(
        rows, list(FEATURES), scores=reference.frame["score"].to_numpy(),
        labels=reference.frame[schema.TX_FRAUD].to_numpy(), source="reference stream",
    )  # fmt: skip
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(reference.frame[schema.TX_FRAUD], reference.frame["score"]))
    return registry.register(
        "fraud",
        {LIGHTGBM_ARTIFACT: tiny_lightgbm(0), PROFILE_ARTIFACT: profile_bytes(profile)},
        flavor="lightgbm", signature=sample_signature(), lineage=sample_lineage(), params={},
        metrics={"auc_roc": auc},
        threshold=DecisionThreshold(value=THRESHOLD, policy="alert_budget", parameter=100.0),
    )  # fmt: skip
