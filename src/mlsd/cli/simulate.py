"""`mlsd simulate`: placeholder until the simulator lands."""

from __future__ import annotations


def simulate() -> None:
    """Simulate credit-card transactions."""
