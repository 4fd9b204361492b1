"""The domain transaction: one card payment, as every entry point hands it to scoring.

HTTP bodies, job files and stream events are validated at their edge (`mlsd.serving.schemas`,
the stream decoder) and converted into this plain record, so scoring never depends on how a
transaction arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)  # not frozen: built for every scoring request, a frozen init is 2x
class Transaction:
    """One raw card payment: who paid whom, how much, when (timezone-aware, UTC)."""

    transaction_id: int
    customer_id: int
    terminal_id: int
    amount: float
    timestamp: datetime
