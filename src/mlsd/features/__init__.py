"""The feature store: definitions as code, batch pipeline, point-in-time joins, online store.

One definition of each feature, computed in batch (DuckDB), joined point-in-time for
training and served online with the same values. Entry point: `FeatureStore.open()`.
"""

from typing import Final

from mlsd.features.handbook import HANDBOOK_FEATURES, HANDBOOK_VIEWS

#: What a model sees for a stored feature that is missing or expired, in training sets and
#: at serving alike (a count or a risk of 0: nothing seen in the window). The store itself
#: reports such values as NaN with a status; the model's input is filled with this.
MISSING_VALUE: Final = 0.0

__all__ = ["HANDBOOK_FEATURES", "HANDBOOK_VIEWS", "MISSING_VALUE"]
