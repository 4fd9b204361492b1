"""Divergence of a shadow challenger from the champion, and the dangerous-divergence rule.

Over the logged pairs (`mlsd.rollout.pairs`): how far apart the two score distributions
are (KS, PSI with the champion's scores as the reference), how often the decisions
disagree (with a Wilson interval), overall and by segment; and the one disagreement that
costs money: the challenger approving what the champion blocks.

`DangerousDivergence(max_rate, alpha).check(pairs)` is the rule a controller calls: each
card the champion blocks (its first block of the day; or each block, `unit="block"`) is a
trial, "did the challenger approve it?", and a one-sided sequential
test (`mlsd.stats.RateAboveTest`'s statistic, over the whole history) asks whether that
rate exceeds `max_rate`. Its p-value is the running maximum over every pair, so checking
every minute, every hour or after every request gives the same guarantee: on a
challenger whose true rate is at most `max_rate`, the alert fires with probability at
most `alpha`, however long the shadow runs. A firing check logs a WARNING with the stable
event name `rollout.dangerous_divergence` and returns a `DivergenceAlert`; the controller
stops the rollout on it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from mlsd.errors import ValidationError
from mlsd.rollout.pairs import SEGMENTS
from mlsd.stats import Interval, ks, psi, wilson
from mlsd.stats.msprt import always_valid_pvalues
from mlsd.stats.rate_test import rate_log_ratios

log = logging.getLogger(__name__)

EVENT: Final = "rollout.dangerous_divergence"
BLOCK: Final = "fraud"


@dataclass(frozen=True)
class DivergenceAlert:
    """The challenger approves more of the champion's blocks than allowed, significantly.

    `requests` and `blocks` count the pairs and the trials (blocked cards with
    `unit="card"`, champion blocks with "block") up to the pair at which the test first
    crossed (`at`); `approved` / `blocks` is the rate seen then, `p_value` the always-valid
    p-value then (<= alpha); `p_value_now` is over the whole history checked.
    """

    rollout: str
    at: str
    requests: int
    blocks: int
    approved: int
    rate: Interval
    p_value: float
    p_value_now: float
    max_rate: float
    alpha: float
    unit: str = "card"
    event: str = EVENT
    #: What the controller does with it: a dangerous challenger is stopped.
    stop_rollout: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class DangerousDivergence:
    """The rule: alert when the share of champion blocks the challenger approves is above
    `max_rate` with significance `alpha` (one-sided, always valid under repeated checks).

    The default, 20 %, sits above what an equally good retrained model approves (10 % of
    the champion's blocked cards in `mlsd lab run shadow-divergence`), below a broken or
    stale one (30-35 % there). `strength` is the weight of the test's Beta prior (mean
    `max_rate`): the test is quickest on rates a little above `max_rate` when it is large,
    on large excesses when small; 10 is a fair middle.
    """

    max_rate: float = 0.2
    alpha: float = 0.01
    strength: float = 10.0
    #: "card": one trial per card and day, its first champion block (a burst of blocks on
    #: one card is one piece of evidence, not ten: the test assumes independent trials);
    #: "block": every champion block.
    unit: str = "card"

    def __post_init__(self) -> None:
        if self.unit not in ("card", "block"):
            raise ValidationError(f"unit must be 'card' or 'block', not {self.unit!r}",
                                  field="unit")  # fmt: skip
        if not 0.0 < self.max_rate < 1.0:
            raise ValidationError(f"max_rate must be in (0, 1), not {self.max_rate}",
                                  field="max_rate")  # fmt: skip
        if not 0.0 < self.alpha < 0.5:
            raise ValidationError(f"alpha must be in (0, 0.5), not {self.alpha}", field="alpha")

    def trials(self, pairs: pd.DataFrame) -> np.ndarray:
        """Positions (in `pairs`) of the trials: the champion blocks, or with unit "card"
        the first block of each card (customer) and UTC day; a row without a customer is a
        card of its own."""
        where = np.flatnonzero((pairs["champion_decision"] == BLOCK).to_numpy())
        if self.unit == "block" or where.size == 0:
            return where
        rows = pairs.iloc[where]
        if "customer_id" in rows:
            card = rows["customer_id"].astype("string").fillna("row:" + pd.Series(
                where.astype(str), index=rows.index))  # fmt: skip
        else:
            card = pd.Series(where.astype(str), index=rows.index)
        day = pd.to_datetime(rows["ts"], utc=True).dt.strftime("%Y-%m-%d")
        first = ~pd.DataFrame({"card": card.to_numpy(), "day": day.to_numpy()}).duplicated()
        return where[first.to_numpy()]

    def p_values(self, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The always-valid p-value after each trial (see `trials`) and the trials'
        positions in `pairs`; pairs in time order."""
        where = self.trials(pairs)
        approved = (pairs["challenger_decision"].to_numpy()[where] != BLOCK).cumsum()
        n = np.arange(1, where.size + 1)
        lr = rate_log_ratios(approved, n, self.max_rate, self.strength)
        return always_valid_pvalues(lr), where

    def check(self, pairs: pd.DataFrame) -> DivergenceAlert | None:
        """Test the pairs so far (all of them, oldest first); an alert, or None."""
        if pairs.empty:
            return None
        p, where = self.p_values(pairs)
        crossed = np.flatnonzero(p <= self.alpha)
        if crossed.size == 0:
            return None
        k = int(crossed[0])
        row = int(where[k])
        blocks = k + 1
        approved = int((pairs["challenger_decision"].to_numpy()[where[:blocks]] != BLOCK).sum())
        alert = DivergenceAlert(
            rollout=str(pairs["rollout"].iloc[0]),
            at=pd.Timestamp(pairs["ts"].iloc[row]).isoformat(),
            requests=row + 1,
            blocks=blocks,
            approved=approved,
            rate=wilson(approved, blocks),
            p_value=float(p[k]),
            p_value_now=float(p[-1]),
            max_rate=self.max_rate,
            alpha=self.alpha,
            unit=self.unit,
        )
        log.warning(
            "%s rollout=%s approved=%d/%d blocked %ss (limit %.3g) p=%.2g after %d requests",
            EVENT, alert.rollout, approved, blocks, self.unit, self.max_rate, alert.p_value,
            row + 1,
            extra={"event": EVENT, "alert": alert.to_dict()},
        )  # fmt: skip
        return alert


@dataclass(frozen=True)
class SegmentDivergence:
    """Disagreement within one segment value (e.g. amount band >=220 €)."""

    segment: str
    value: str
    pairs: int
    disagreement: Interval
    champion_blocks: int
    challenger_approves: int
    #: Share of the champion's blocks the challenger approves (None without blocks).
    dangerous: Interval | None


@dataclass(frozen=True)
class DivergenceReport:
    """Everything the shadow analysis says about one rollout's pairs."""

    rollout: str
    pairs: int
    champion_versions: list[str]
    challenger_versions: list[str]
    ks_statistic: float
    ks_pvalue: float
    psi: float
    disagreement: Interval
    champion_blocks: int
    challenger_blocks: int
    challenger_approves: int
    dangerous: Interval | None
    dangerous_p_value: float
    segments: list[SegmentDivergence] = field(default_factory=list)
    alert: DivergenceAlert | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def _cut(pairs: pd.DataFrame) -> tuple[int, Interval, int, int, Interval | None]:
    champion = (pairs["champion_decision"] == BLOCK).to_numpy()
    challenger = (pairs["challenger_decision"] == BLOCK).to_numpy()
    n = len(pairs)
    differ = int((champion != challenger).sum())
    blocks = int(champion.sum())
    approves = int((champion & ~challenger).sum())
    return n, wilson(differ, n), blocks, approves, wilson(approves, blocks) if blocks else None


def analyse(pairs: pd.DataFrame, rule: DangerousDivergence | None = None) -> DivergenceReport:
    """The divergence report of a pairs frame (`mlsd.rollout.pairs.pairs`)."""
    if pairs.empty:
        raise ValidationError("no pairs to analyse", field="pairs")
    rule = rule or DangerousDivergence()
    n, disagreement, blocks, approves, dangerous = _cut(pairs)
    champion, challenger = pairs["champion_score"], pairs["challenger_score"]
    distance = ks(champion, challenger)
    p, _ = rule.p_values(pairs)
    segments = []
    for name in SEGMENTS:
        for value, part in pairs.groupby(name, sort=True):
            m, dis, b, a, dang = _cut(part)
            segments.append(SegmentDivergence(name, str(value), m, dis, b, a, dang))
    return DivergenceReport(
        rollout=str(pairs["rollout"].iloc[0]),
        pairs=n,
        champion_versions=sorted(pairs["champion_version"].unique().tolist()),
        challenger_versions=sorted(pairs["challenger_version"].unique().tolist()),
        ks_statistic=distance.statistic,
        ks_pvalue=distance.pvalue,
        psi=psi(champion, challenger),
        disagreement=disagreement,
        champion_blocks=blocks,
        challenger_blocks=int((pairs["challenger_decision"] == BLOCK).sum()),
        challenger_approves=approves,
        dangerous=dangerous,
        dangerous_p_value=float(p[-1]) if p.size else 1.0,
        segments=segments,
        alert=rule.check(pairs),
    )
