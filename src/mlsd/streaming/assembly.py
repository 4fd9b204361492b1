"""A stream batch's model inputs as one matrix, column by column.

With window features on, the processor has every window view's values for the whole batch
in one array (`WindowFeatures.rows`), and the request-time features are the handbook's
transforms of the amount and the time, which have a numpy form
(`RequestTransform.vector`). When those two give every feature of the model's signature,
the batch's (n, k) float32 matrix is a few column assignments: no row objects, no status
dictionaries. The values are those the assembler would build (the same float64 values
cast to float32, the same transforms); a signature needing anything else (a view the state
does not serve) gets `None`, and the pipeline's assembler builds its rows as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlsd.features.handbook import REQUEST_VIEW
from mlsd.features.transforms import RequestTransform
from mlsd.streaming.codec import TransactionColumns

_TRANSFORMS = {t.feature: t for t in REQUEST_VIEW.transforms}


@dataclass(frozen=True)
class BatchLayout:
    """Where each feature of one signature comes from: the state's columns or a transform."""

    width: int
    outputs: list[int]  # signature positions filled from the state...
    sources: list[int]  # ...from these columns of the state's rows
    request: list[tuple[int, RequestTransform]]

    def fill(self, columns: TransactionColumns, state_rows: np.ndarray) -> np.ndarray:
        """The (n, width) float32 inputs of the batch `columns`, whose state rows these are."""
        out = np.empty((len(columns), self.width), dtype=np.float32)
        if self.outputs:
            out[:, self.outputs] = state_rows[:, self.sources]
        for j, transform in self.request:
            out[:, j] = transform.vector(columns.amount, columns.time_us)
        return out


def batch_layout(names: Sequence[str], state_features: Sequence[str]) -> BatchLayout | None:
    """The layout of signature `names` over the state's features and the request's
    transforms; None if a feature comes from neither."""
    from_state = {f: i for i, f in enumerate(state_features)}
    outputs, sources, request = [], [], []
    for j, name in enumerate(names):
        if name in from_state:
            outputs.append(j)
            sources.append(from_state[name])
        elif name in _TRANSFORMS:
            request.append((j, _TRANSFORMS[name]))
        else:
            return None
    return BatchLayout(len(names), outputs, sources, request)
