"""Features computed from the request itself (the handbook's request view), for scoring.

A thin view of the feature store's request views: each function is the view's
`RequestTransform` rendered to Python (`mlsd.features.transforms`), the same definition
the batch pipeline and the point-in-time join render to SQL. Kept in process, so scoring
needs no round trip for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from mlsd.data.transaction import Transaction
from mlsd.errors import ValidationError
from mlsd.features.definitions import FeatureView
from mlsd.features.handbook import REQUEST_VIEW

RequestFunction = Callable[[Transaction], float]


def request_functions(view: FeatureView = REQUEST_VIEW) -> dict[str, RequestFunction]:
    """feature -> function of one transaction, for a request view (a served version, say)."""
    if view.kind != "request":
        raise ValidationError(f"view {view.name!r} is not a request view", field="view")
    return {t.feature: t.row() for t in view.transforms}


#: The handbook's request view, as the scoring pipeline reads it.
REQUEST_FEATURES: Final[dict[str, Callable[[Transaction], float]]] = request_functions()
