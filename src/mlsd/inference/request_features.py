"""Features computed from the request itself (the handbook's request view).

Same definitions as the feature store's `transaction_request` view: the amount,
whether the payment happened on a weekend (weekday >= 5) and at night (hour <= 6,
UTC). Kept here, vectorised over a request, so scoring needs no round trip for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from mlsd.data.transaction import Transaction

REQUEST_FEATURES: Final[dict[str, Callable[[Transaction], float]]] = {
    "TX_AMOUNT": lambda tx: float(tx.amount),
    "TX_DURING_WEEKEND": lambda tx: float(tx.timestamp.weekday() >= 5),  # already UTC
    "TX_DURING_NIGHT": lambda tx: float(tx.timestamp.hour <= 6),
}
