"""One quick run per experiment per test session, shared by the generic checks of
`test_lab.py` and an experiment's own assertions (a quick run costs up to a minute)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlsd.lab import run_experiment

QuickRun = Callable[[str], Path]


@pytest.fixture(scope="session")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    """`quick_report(name)`: the report.md of the experiment's quick run, run once."""
    done: dict[str, Path] = {}

    def run(name: str) -> Path:
        if name not in done:
            done[name] = run_experiment(name, tmp_path_factory.mktemp(name), quick=True)
        return done[name]

    return run
