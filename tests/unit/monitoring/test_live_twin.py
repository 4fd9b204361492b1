"""Live drift's twin in the shadow process: its summaries make the windows, reports and
score alarms the monitor makes from the rows themselves."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mlsd.errors import ValidationError
from mlsd.monitoring.binning import BinnedWindow
from mlsd.monitoring.live import DriftMonitor, DriftSummary
from mlsd.monitoring.live_twin import DriftTwin
from mlsd.registry.profile import build_profile
from tests.unit.monitoring.test_live import PROFILE, batch

KEY = ("fraud", 2, "s1:shadow")


class Profiles:
    """What `registry_profiles` asks of a registry: fraud/2 has PROFILE."""

    def get(self, name: str, version: int) -> Any:
        return SimpleNamespace(name=name, version=version)

    def reference_profile(self, mv: Any) -> Any:
        return PROFILE


def test_merged_counts_are_the_counts_of_the_rows() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 3)), rng.normal(size=(200, 3))
    a[3, 1] = np.nan
    b[5, 2] = -np.inf
    sa, sb = rng.uniform(size=300), rng.uniform(size=200)
    whole = BinnedWindow(PROFILE).add(np.concatenate([a, b]), np.concatenate([sa, sb]))
    merged = BinnedWindow(PROFILE).add(a, sa).merge(BinnedWindow(PROFILE).add(b, sb).tally())
    assert (merged.n, merged.scored) == (whole.n, whole.scored)
    for mine, theirs in zip(merged.counts, whole.counts, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(merged.missing, whole.missing)
    assert merged.score_counts is not None
    assert whole.score_counts is not None
    np.testing.assert_array_equal(merged.score_counts, whole.score_counts)
    other = build_profile(rng.normal(size=(500, 4)), ["a", "b", "c", "d"])
    with pytest.raises(ValidationError, match="another profile"):
        BinnedWindow(PROFILE).merge(BinnedWindow(other).tally())


def test_the_twins_summaries_make_the_monitors_windows_and_alarms() -> None:
    rng = np.random.default_rng(5)
    sizes = [1, 40, 7, 300, 1, 90, 250, 3, 400, 120, 60, 1]
    batches = [  # shadows as the child scores them, scores shifted halfway (alarms)
        batch(
            2, rng.normal(size=(n, 3)), KEY[2], np.clip(rng.uniform(size=n) + 0.3 * (i > 5), 0, 1)
        )
        for i, n in enumerate(sizes)
    ]
    batches.insert(4, batch(2, rng.normal(size=(5, 4)), KEY[2]))  # another width: not binned
    direct = DriftMonitor(lambda n, v: PROFILE, window_rows=10_000, score_alarm_rate=1e-3)
    for b in batches:
        direct.observe(b)
    direct.drain()
    twin = DriftTwin(Profiles(), 1e-3, direct.calibrations())
    twinned = DriftMonitor(lambda n, v: PROFILE, window_rows=10_000, score_alarm_rate=1e-3)
    model = SimpleNamespace(name="fraud", version=2)
    for start in range(0, len(batches), 3):  # one summary per job
        summary = twin.summarize(batches[start : start + 3])
        assert isinstance(summary, DriftSummary)
        twinned.observe_summary(KEY[2], model, summary)  # type: ignore[arg-type]
    twinned.drain()
    assert twinned.open_rows() == direct.open_rows() == {KEY: 1273}
    assert direct.score_alarms[KEY] > 0
    assert twinned.score_alarms == direct.score_alarms
    assert twinned.level(KEY) == pytest.approx(direct.level(KEY))
    for m in (twinned, direct):  # close both windows now
        m.window_rows = 1
    mine, theirs = twinned.drain(), direct.drain()
    assert [r.n_rows for r in mine] == [r.n_rows for r in theirs] == [1273]
    assert [(f.name, f.psi, f.ks) for f in mine[0].features] == [
        (f.name, f.psi, f.ks) for f in theirs[0].features
    ]
    assert mine[0].score == theirs[0].score
    assert twinned.history()[KEY][0].score_counts == direct.history()[KEY][0].score_counts
