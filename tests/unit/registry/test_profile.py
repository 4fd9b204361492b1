"""Reference profiles in the registry: stored with a version, checked, missing for old ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlsd.errors import IntegrityError
from mlsd.registry import Registry
from mlsd.registry.profile import MissingProfileError, load_profile
from mlsd.settings import Settings
from tests.unit.monitoring.helpers import register_profiled, register_unprofiled


def test_a_profile_round_trips_and_an_old_version_has_none(tmp_path: Path) -> None:
    with Registry.open(Settings(home=tmp_path)) as registry:
        old = register_unprofiled(registry)
        new = register_profiled(registry)
        with pytest.raises(MissingProfileError, match="no reference profile"):
            registry.reference_profile(old)
        profile = registry.reference_profile(new)
    assert profile.n_rows == 5000
    assert profile.source == "sample rows"
    assert [f.name for f in profile.features] == [f"f{i}" for i in range(8)]
    f0 = profile.features[0]
    assert sum(f0.counts) == 5000
    assert len(f0.counts) == len(f0.edges) + 1 == 10
    # deciles: each bin holds about a tenth of the rows
    assert np.allclose(np.asarray(f0.counts) / 5000, 0.1, atol=0.01)


def test_a_malformed_profile_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="malformed"):
        load_profile(b'{"n_rows": 3}', "fraud/9")


def test_labels_add_a_calibration_that_matches_sklearn_and_round_trips() -> None:
    from sklearn.isotonic import IsotonicRegression

    from mlsd.registry.profile import build_profile, profile_bytes

    rng = np.random.default_rng(3)
    scores = rng.uniform(size=4000)
    labels = (rng.uniform(size=4000) < scores**2).astype(int)
    X = rng.normal(size=(4000, 2))
    profile = build_profile(X, ["a", "b"], scores=scores, labels=labels)
    assert profile.calibration is not None
    assert profile.calibration.n == 4000
    assert profile.calibration.positives == int(labels.sum())
    probe = np.linspace(-0.5, 1.5, 101)
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(scores, labels)
    assert np.allclose(profile.calibration.calibrated(probe), iso.predict(probe))
    assert load_profile(profile_bytes(profile)) == profile
    # one class: no calibration (it would say nothing); no labels: none either
    assert build_profile(X, ["a", "b"], scores=scores, labels=np.zeros(4000)).calibration is None
    assert build_profile(X, ["a", "b"], scores=scores).calibration is None
