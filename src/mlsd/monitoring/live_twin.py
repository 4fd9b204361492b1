"""Live drift's twin in the shadow scorer process: shadows binned where they are scored.

With a shadow process (`mlsd.inference.shadow_process`), a 100 % shadow would double the
rows the server's drift thread bins, and its score detector is a Python loop over every
score: GIL time the answers wait for. `DriftTwin` runs in the child instead: for one
variant's shadows of a job it counts their rows in the version's profile bins and feeds
their scores, in order, to the version's detector (kept in the child), and sends back only
the counts, the alarms and the detector's level (`DriftSummary`, a few hundred numbers).
The server's `DriftMonitor` adds the counts to the same window: every count is a sum over
rows, so its windows, reports and alarms are those it would have made itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlsd.inference.observers import ScoredBatch
from mlsd.monitoring.binning import BinnedWindow
from mlsd.monitoring.live import DriftMonitor, DriftSummary, registry_profiles
from mlsd.stats.streaming import PageHinkley


class DriftTwin:
    """`DriftMonitor`'s shadow work, in the shadow scorer process (`ShadowTwin`)."""

    def __init__(
        self,
        registry: Any,
        score_alarm_rate: float | None,
        calibrations: Mapping[tuple[str, int], PageHinkley | None],
    ) -> None:
        # A monitor never started: its profile lookup and detectors, no window of its own.
        self.monitor = DriftMonitor(
            registry_profiles(registry), score_alarm_rate=score_alarm_rate,
            calibrations=calibrations,
        )  # fmt: skip

    def summarize(self, batches: Sequence[ScoredBatch]) -> DriftSummary | None:
        """The counts of the batches' rows (one variant and version), their detector's
        alarms and level; None without a profile or a row of its width."""
        if not batches:
            return None
        first = batches[0]
        key = (first.model.name, first.model.version, first.variant)
        profile = self.monitor.profile(key[0], key[1])
        if profile is None:
            return None
        width = len(profile.features)
        fits = [b for b in batches if b.values.ndim == 2 and b.values.shape[1] == width]
        if not fits:
            return None
        scores = np.concatenate([b.scores for b in fits])
        window = BinnedWindow(profile).add(np.concatenate([b.values for b in fits]), scores)
        alarms = self.monitor.detect(key, profile, scores)
        return DriftSummary(window.tally(), alarms, self.monitor.level(key))
