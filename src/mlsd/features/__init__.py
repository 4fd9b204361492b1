"""The feature store: definitions as code, batch pipeline, point-in-time joins, online store.

One definition of each feature, computed in batch (DuckDB), joined point-in-time for
training and served online with the same values. Entry point: `FeatureStore.open()`.
"""

from mlsd.features.handbook import HANDBOOK_FEATURES, HANDBOOK_VIEWS

__all__ = ["HANDBOOK_FEATURES", "HANDBOOK_VIEWS"]
