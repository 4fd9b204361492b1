"""Calibrated detectors: the false-alarm rate they were calibrated to, and real detections."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.stats.streaming import ADWIN, KSWIN, PageHinkley, count_alarms, first_alarm

RATE = 1e-3
EVENTS = 100_000  # 100 false alarms expected at RATE


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return np.random.default_rng(0).lognormal(3.0, 1.0, 30_000)  # skewed, like amounts


@pytest.mark.parametrize("kind", [PageHinkley, KSWIN])
def test_false_alarms_match_the_calibrated_rate(kind: type, reference: np.ndarray) -> None:
    detector = kind.calibrate(reference, rate=RATE, rng=np.random.default_rng(1))
    quiet = np.random.default_rng(2).choice(reference, EVENTS)
    alarms = count_alarms(detector, quiet)
    # Poisson(100): 99.9 % within 70..133; calibration noise (100 streams) widens it
    assert 55 <= alarms <= 160, alarms


def test_the_default_thresholds_would_be_another_rate(reference: np.ndarray) -> None:
    strict = PageHinkley.calibrate(reference, rate=1e-4, rng=np.random.default_rng(1))
    loose = PageHinkley.calibrate(reference, rate=1e-2, rng=np.random.default_rng(1))
    assert strict.threshold > loose.threshold
    quiet = np.random.default_rng(3).choice(reference, 20_000)
    assert count_alarms(loose, quiet) > 5 * max(1, count_alarms(strict, quiet))


def test_adwin_stays_at_or_below_its_rate(reference: np.ndarray) -> None:
    detector = ADWIN.calibrate(reference, rate=RATE, events=20_000, steps=6)
    quiet = np.random.default_rng(4).choice(reference, 30_000)
    assert count_alarms(detector, quiet) <= 2 * RATE * 30_000 + 10


@pytest.mark.parametrize("kind", [PageHinkley, KSWIN, ADWIN])
def test_a_shift_is_found_soon_after_it_starts(kind: type, reference: np.ndarray) -> None:
    kwargs = {"events": 10_000, "steps": 6} if kind is ADWIN else {}
    detector = kind.calibrate(reference, rate=RATE, rng=np.random.default_rng(5), **kwargs)
    rng = np.random.default_rng(6)
    stream = np.concatenate([rng.choice(reference, 3_000), 1.6 * rng.choice(reference, 5_000)])
    found = first_alarm(detector, stream, start=3_000)
    assert found is not None
    assert found - 3_000 < 2_000


def test_shape_and_flags() -> None:
    ph = PageHinkley(0.0, 1.0, threshold=5.0)
    assert ph.update(1.0) is ph
    assert not ph.drift_detected
    assert ph.get() == pytest.approx(0.9)
    for _ in range(6):
        ph.update(2.0)
    assert ph.drift_detected
    assert ph.get() == 0.0
    ph.update(float("nan"))
    assert not ph.drift_detected
    assert ph.n == 7
    with pytest.raises(AttributeError):
        ph.drift_detected = False  # type: ignore[misc]


def test_bad_settings_are_refused(reference: np.ndarray) -> None:
    with pytest.raises(ValueError, match="rate"):
        PageHinkley.calibrate(reference, rate=0.0)
    with pytest.raises(ValueError, match="constant"):
        PageHinkley.calibrate(np.ones(100))
    with pytest.raises(ValueError, match="2 finite"):
        KSWIN.calibrate(np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="share"):
        KSWIN(np.array([0.0]), np.array([0.5, 0.2]), threshold=0.1)
