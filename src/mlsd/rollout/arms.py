"""Per-arm A/B figures that need the delayed labels: precision of blocks, fraud € caught,
false-positive rate, cards flagged per day; and the sequential comparison of two arms.

Each arm is a primary variant of the prediction log (`{rollout}:champion`,
`{rollout}:challenger`); shadow rows never answered anyone and are left out. The join with
the labels is the fraud team's own (`mlsd.predlog.summary.outcomes`), applied to each
arm's rows, so the figures mean exactly what `mlsd demo` prints.

The comparison walks the labelled rows in time order, each one a look, and gives the
mSPRT's always-valid p-value for the difference of false-positive rates and of catch
rates (recall): reading it every hour does not inflate false positives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.errors import NotFoundError
from mlsd.predlog.summary import labelled, outcomes
from mlsd.rollout.pairs import SHADOW_SUFFIX
from mlsd.stats import Interval, newcombe, proportion_pvalues, wilson


@dataclass(frozen=True)
class ArmMetrics:
    """One arm's figures against the labels."""

    variant: str
    versions: list[str]
    scored: int
    labelled: int
    frauds: int
    flagged: int
    #: Share of blocks that were fraud (None without blocks).
    precision: Interval | None
    #: Share of frauds blocked (None without frauds).
    recall: Interval | None
    #: Share of legitimate transactions blocked.
    false_positive_rate: Interval | None
    caught_eur: float
    missed_eur: float
    cards_flagged_per_day: float
    days: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class ArmComparison:
    """Challenger minus champion, with Newcombe intervals and always-valid p-values."""

    champion: str
    challenger: str
    false_positive_rate_diff: Interval
    false_positive_rate_p: float
    recall_diff: Interval | None
    recall_p: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def arm_variants(frame: pd.DataFrame, rollout: str | None = None) -> list[str]:
    """The answering variants of a log read (of `rollout` when given)."""
    variants = frame["variant"].astype(str)
    mine = variants[~variants.str.endswith(SHADOW_SUFFIX)]
    if rollout is not None:
        mine = mine[mine.str.startswith(f"{rollout}:")]
    return sorted(mine.unique().tolist())


def arm_metrics(
    frame: pd.DataFrame, labels: pd.DataFrame, rollout: str | None = None
) -> list[ArmMetrics]:
    """The figures of each answering variant (of `rollout`) against `labels`
    (TRANSACTION_ID, CUSTOMER_ID, TX_DATETIME, TX_AMOUNT, TX_FRAUD)."""
    names = arm_variants(frame, rollout) if not frame.empty else []
    if not names:
        where = f" of rollout {rollout!r}" if rollout else ""
        raise NotFoundError(f"no answered predictions{where} in the log read", field="rollout")
    out = []
    for name in names:
        rows = frame[frame["variant"].astype(str) == name]
        o = outcomes(rows, labels)
        legit = o.scored - o.frauds
        out.append(
            ArmMetrics(
                variant=name,
                versions=sorted(rows["version"].astype(str).unique().tolist()),
                scored=len(rows),
                labelled=o.scored,
                frauds=o.frauds,
                flagged=o.flagged,
                precision=wilson(o.caught, o.flagged) if o.flagged else None,
                recall=wilson(o.caught, o.frauds) if o.frauds else None,
                false_positive_rate=wilson(o.false_alarms, legit) if legit else None,
                caught_eur=o.caught_eur,
                missed_eur=o.missed_eur,
                cards_flagged_per_day=float(np.mean([d.cards_flagged for d in o.days]))
                if o.days
                else 0.0,
                days=len(o.days),
            )
        )
    return out


def compare_arms(
    frame: pd.DataFrame, labels: pd.DataFrame, champion: str, challenger: str, tau: float = 0.01
) -> ArmComparison:
    """Challenger minus champion on false-positive rate and recall, each labelled row a
    look of the mSPRT (`tau`: the size of difference worth finding, absolute)."""
    parts = []
    for name in (champion, challenger):
        rows = labelled(frame[frame["variant"].astype(str) == name], labels)
        if rows.empty:
            raise NotFoundError(f"no labelled predictions of {name!r}", field="variant")
        rows = rows.assign(arm=name)
        parts.append(rows)
    both = pd.concat(parts).sort_values("TX_DATETIME", kind="stable")
    is_b = (both["arm"] == challenger).to_numpy()
    fraud = both["TX_FRAUD"].astype(int).to_numpy() == 1
    flag = (both["decision"] == "fraud").to_numpy()

    def sequential(mask: np.ndarray, hit: np.ndarray) -> tuple[Interval | None, float]:
        a, b = mask & ~is_b, mask & is_b
        na, nb = a.cumsum(), b.cumsum()
        sa, sb = (a & hit).cumsum(), (b & hit).cumsum()
        if na[-1] == 0 or nb[-1] == 0:
            return None, 1.0
        p = proportion_pvalues(sa, na, sb, nb, tau)
        diff = newcombe(int(sb[-1]), int(nb[-1]), int(sa[-1]), int(na[-1]))
        return diff, float(p[-1])

    fpr, fpr_p = sequential(~fraud, flag)
    recall, recall_p = sequential(fraud, flag)
    if fpr is None:
        raise NotFoundError("an arm has no legitimate labelled transaction", field="labels")
    return ArmComparison(champion, challenger, fpr, fpr_p, recall, recall_p)
