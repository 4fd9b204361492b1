from __future__ import annotations

import platform

from mlsd.registry.environment import current_environment, diff


def test_capture_pins_every_installed_distribution() -> None:
    env = current_environment()
    assert env.python == platform.python_version()
    assert "numpy" in env.packages
    assert "lightgbm" in env.packages
    assert "numpy==" in env.requirements
    assert current_environment() is env  # cached per process


def test_same_environment_has_no_diff_and_a_stable_digest() -> None:
    env = current_environment()
    assert diff(env) == {}
    assert env.model_copy().digest == env.digest


def test_diff_reports_python_and_package_changes() -> None:
    env = current_environment()
    packages = dict(env.packages)
    packages["numpy"] = "0.0.1"
    packages["ghost-package"] = "1.0"
    del packages["lightgbm"]
    recorded = env.model_copy(update={"python": "3.9.0", "packages": packages})
    out = diff(recorded)
    assert out["python"] == {"recorded": "3.9.0", "current": env.python}
    assert out["packages"]["changed"] == {"numpy": ["0.0.1", env.packages["numpy"]]}
    assert out["packages"]["missing"] == ["ghost-package"]
    assert out["packages"]["added"] == ["lightgbm"]
    assert recorded.digest != env.digest
