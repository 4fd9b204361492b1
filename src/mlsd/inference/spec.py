"""What serving needs to know about a model version, typed: its serving spec and the loaded model.

The spec is read once from the registry's `ModelVersion` when a version is loaded: flavor,
feature names in signature order, the feature-view versions it was trained on, and the
decision threshold with the policy that chose it. Nothing on the scoring path looks anything
up by name or `getattr`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from mlsd.inference.runtimes import Runtime

#: The policy recorded for versions registered before thresholds were chosen at training.
UNCHOSEN = "unchosen (0.5 default)"


@dataclass(frozen=True, slots=True)
class ServingSpec:
    """How to serve one version: its features, their views, and where it decides `fraud`."""

    flavor: str
    feature_names: tuple[str, ...]
    feature_views: Mapping[str, str] = field(default_factory=dict)
    threshold: float = 0.5
    #: The named policy that chose `threshold` and its parameter, e.g. `alert_budget k=100`.
    threshold_policy: str = UNCHOSEN


@dataclass(frozen=True)
class LoadedModel:
    """One model version, loaded and warmed, ready to score."""

    name: str
    version: int
    spec: ServingSpec
    runtime: Runtime
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: `name/version`, the cache and metrics key of this version (made once: read per request).
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.name}/{self.version}")

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The model's inputs, in signature order."""
        return self.spec.feature_names

    @property
    def threshold(self) -> float:
        """Scores at or above it are decided `fraud`."""
        return self.spec.threshold

    @property
    def feature_views(self) -> Mapping[str, str]:
        """{feature view: version} the model was trained on."""
        return self.spec.feature_views

    def predict(self, values: np.ndarray) -> np.ndarray:
        """Fraud probability of each row."""
        return self.runtime.predict(values)
