"""Features computed from the request itself (the handbook's request view), for scoring.

A thin view of the feature store's `transaction_request` view: each function is that
view's `RequestTransform` rendered to Python (`mlsd.features.transforms`), the same
definition the batch pipeline and the point-in-time join render to SQL. Kept in process,
so scoring needs no round trip for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from mlsd.data.transaction import Transaction
from mlsd.features.handbook import REQUEST_VIEW

REQUEST_FEATURES: Final[dict[str, Callable[[Transaction], float]]] = {
    t.feature: t.row() for t in REQUEST_VIEW.transforms
}
