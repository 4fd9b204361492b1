"""Fraud detection metrics: AUC ROC, average precision and Card Precision@k.

Card Precision@k is the handbook's operational metric (section 4.2): each day,
investigators check the k cards with the highest score; a card's score is its highest
transaction score that day and it counts as a hit when any of its transactions that
day is a fraud. Cards detected on an earlier test day are removed from later days.
The figure is the mean of the daily precisions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from mlsd.data import schema
from mlsd.errors import ValidationError
from mlsd.training.protocol import DAY, with_day

SCORE = "SCORE"

METRIC_NAMES = ("auc_roc", "average_precision", "card_precision_at_100")


@dataclass(frozen=True)
class CardPrecision:
    """Card Precision@k: the mean and the value of each test day."""

    k: int
    mean: float
    per_day: dict[str, float] = field(default_factory=dict)
    compromised_per_day: dict[str, int] = field(default_factory=dict)


def card_precision_at_k(
    frame: pd.DataFrame, scores: ArrayLike, k: int = 100, *, remove_detected: bool = True
) -> CardPrecision:
    """Card Precision@k of `scores` over the days of `frame` (CUSTOMER_ID, TX_FRAUD, time).

    >>> import pandas as pd
    >>> t = pd.Timestamp("2018-08-08 10:00", tz="UTC")
    >>> f = pd.DataFrame({"CUSTOMER_ID": [1, 1, 2, 3], "TX_FRAUD": [0, 1, 0, 0],
    ...                   "TX_DATETIME": [t] * 4})
    >>> card_precision_at_k(f, [0.1, 0.2, 0.9, 0.05], k=2).mean
    0.5
    """
    if k < 1:
        raise ValidationError("k must be at least 1", field="k")
    frame = with_day(frame)
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != (len(frame),):
        raise ValidationError("one score per row is required", field="scores")
    cards = pd.DataFrame(
        {
            DAY: frame[DAY].to_numpy(),
            schema.CUSTOMER_ID: frame[schema.CUSTOMER_ID].to_numpy(),
            schema.TX_FRAUD: frame[schema.TX_FRAUD].to_numpy(),
            SCORE: values,
        }
    )
    per_card = cards.groupby([DAY, schema.CUSTOMER_ID], sort=True).max().reset_index()
    detected: set[int] = set()
    per_day: dict[str, float] = {}
    compromised: dict[str, int] = {}
    for day, rows in per_card.groupby(DAY, sort=True):
        rows = rows[~rows[schema.CUSTOMER_ID].isin(detected)]
        compromised[str(day)] = int((rows[schema.TX_FRAUD] == 1).sum())
        # stable sort: ties keep card order, as pandas' sort in the handbook code
        top = rows.sort_values(SCORE, ascending=False, kind="stable").head(k)
        hits = top.loc[top[schema.TX_FRAUD] == 1, schema.CUSTOMER_ID]
        per_day[str(day)] = len(hits) / k
        if remove_detected:
            detected.update(int(card) for card in hits)
    mean = float(np.mean(list(per_day.values()))) if per_day else 0.0
    return CardPrecision(k=k, mean=mean, per_day=per_day, compromised_per_day=compromised)


def evaluate(frame: pd.DataFrame, scores: ArrayLike, *, top_k: int = 100) -> dict[str, float]:
    """AUC ROC, average precision and Card Precision@`top_k` of `scores` on `frame`."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    values = np.asarray(scores, dtype=np.float64)
    labels = frame[schema.TX_FRAUD].to_numpy()
    if values.shape != labels.shape:
        raise ValidationError("one score per row is required", field="scores")
    if not np.all(np.isfinite(values)):
        raise ValidationError("scores must be finite", field="scores")
    if len(np.unique(labels)) < 2:
        raise ValidationError(
            "the evaluation set needs both frauds and genuine transactions", field="TX_FRAUD"
        )
    return {
        "auc_roc": float(roc_auc_score(labels, values)),
        "average_precision": float(average_precision_score(labels, values)),
        f"card_precision_at_{top_k}": card_precision_at_k(frame, values, top_k).mean,
    }


def mean_metrics(folds: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over folds, with its standard deviation as `<name>_std`."""
    if not folds:
        return {}
    out: dict[str, float] = {}
    for name in folds[0]:
        values = np.array([fold[name] for fold in folds], dtype=np.float64)
        out[name] = float(values.mean())
        out[f"{name}_std"] = float(values.std())
    return out
