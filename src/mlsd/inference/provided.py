"""Request-time features computed by a component of their own (not the online store's rows,
not the handbook's transforms of the transaction): for instance the embedding similarity
features (`mlsd.features.similarity.SimilarityFeatures`: an ANN index over terminal
embeddings read from the online store).

A provider is installed on the `FeatureAssembler` (`ServeOptions.provided_features`); a model
whose signature names its features gets them, every other model pays nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class ProvidedFeatures(Protocol):
    """Features of scoring requests, by (customer, terminal, request time µs)."""

    @property
    def features(self) -> tuple[str, ...]:
        """The feature names it computes, in the order of its columns."""
        ...

    def values(
        self, requests: Sequence[tuple[int, int, int]]
    ) -> tuple[np.ndarray, list[dict[str, str]]]:
        """(n, len(features)) values (what training filled in where missing) and a status
        per feature per request (`present`, `missing`, ...)."""
        ...
