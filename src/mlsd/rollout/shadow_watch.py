"""A running shadow rollout watched for dangerous divergence, and stopped on it.

`ShadowWatch` is a scoring observer: it keeps the answered (primary) decision of recent
requests and pairs each with the shadow's decision on the same row when that one is scored
(after the answer, off the response path). The rollout agent calls `check` every analysis
interval of the spec; it applies `DangerousDivergence` (`mlsd.rollout.divergence`: the
challenger approving what the champion blocks, above a rate, with an always-valid p-value)
to every pair so far, and the agent aborts the rollout when it fires. The same rule, over
the prediction log, is `mlsd rollout divergence`; this one needs no log.

Memory is bounded: at most `max_pending` answered rows wait for their shadow (the oldest
are forgotten: a shadow dropped by its full queue is never paired), and at most
`max_pairs` pairs are kept (the oldest dropped; the rule's p-value is over what is kept).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime

import pandas as pd

from mlsd.inference.log_observer import row_ids
from mlsd.inference.observers import ScoredBatch
from mlsd.rollout.divergence import DangerousDivergence, DivergenceAlert

#: (time, customer id or None, champion decision)
_Answered = tuple[datetime, int | None, str]


class ShadowWatch:
    """Pairs of one shadow rollout's answers and mirrored scorings; the rule over them."""

    def __init__(
        self,
        rollout_id: str,
        rule: DangerousDivergence | None = None,
        *,
        max_pending: int = 20_000,
        max_pairs: int = 500_000,
    ) -> None:
        self.rollout_id = rollout_id
        self.rule = rule or DangerousDivergence()
        self.shadow_variant = f"{rollout_id}:shadow"
        self.max_pending, self.max_pairs = max_pending, max_pairs
        self._pending: OrderedDict[str, _Answered] = OrderedDict()
        self._pairs: list[tuple[datetime, int | None, str, str]] = []
        self._checked = 0
        self._lock = threading.Lock()
        self.alert: DivergenceAlert | None = None

    @property
    def pairs(self) -> int:
        """Pairs seen so far (kept)."""
        return len(self._pairs)

    def observe(self, batch: ScoredBatch) -> None:
        """Keep an answered row's decision; pair a shadow row with it."""
        ids = row_ids(batch)
        txs = batch.request.transactions
        with self._lock:
            if batch.role == "primary":
                if txs:
                    for tx, rid, decision in zip(txs, ids, batch.decisions, strict=True):
                        self._pending[rid] = (tx.timestamp, tx.customer_id, decision)
                else:  # tensor rows: no transaction time, no card
                    now = datetime.now().astimezone()
                    for rid, decision in zip(ids, batch.decisions, strict=True):
                        self._pending[rid] = (now, None, decision)
                while len(self._pending) > self.max_pending:
                    self._pending.popitem(last=False)
                return
            if batch.variant != self.shadow_variant:
                return
            for rid, decision in zip(ids, batch.decisions, strict=True):
                answered = self._pending.pop(rid, None)
                if answered is not None:
                    self._pairs.append((*answered, decision))
            if len(self._pairs) > self.max_pairs:
                del self._pairs[: len(self._pairs) - self.max_pairs]

    def check(self) -> DivergenceAlert | None:
        """The rule over every pair kept (once it fired, its alert); None while it holds."""
        with self._lock:
            if self.alert is not None or len(self._pairs) == self._checked:
                return self.alert
            rows = list(self._pairs)
            self._checked = len(rows)
        frame = pd.DataFrame(
            rows, columns=["ts", "customer_id", "champion_decision", "challenger_decision"]
        )
        frame["rollout"] = self.rollout_id
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        self.alert = self.rule.check(frame)
        return self.alert
