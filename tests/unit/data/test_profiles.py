"""Customer neighbourhoods: the grid search finds exactly the brute-force answer."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.data.profiles import generate_profiles, neighbourhoods


@pytest.mark.parametrize("radius", [0.7, 5.0, 13.0, 60.0, 150.0])
def test_neighbourhoods_match_brute_force(radius: float) -> None:
    rng = np.random.default_rng(7)
    customers = rng.uniform(0, 100, size=(80, 2))
    terminals = rng.uniform(0, 100, size=(400, 2))
    terminals[:3] = [[0.0, 0.0], [100.0, 100.0], [99.999, 0.0]]  # corners and edges
    offsets, flat = neighbourhoods(customers, terminals, radius)
    dist = np.sqrt(((customers[:, None, :] - terminals[None, :, :]) ** 2).sum(axis=2))
    for c in range(len(customers)):
        expected = np.flatnonzero(dist[c] < radius).tolist()
        assert flat[offsets[c] : offsets[c + 1]].tolist() == expected


def test_exactly_at_radius_is_out() -> None:
    offsets, flat = neighbourhoods(np.array([[50.0, 50.0]]), np.array([[55.0, 50.0]]), 5.0)
    assert offsets.tolist() == [0, 0]
    assert flat.tolist() == []


def test_handbook_density_gives_about_78_terminals() -> None:
    profiles = generate_profiles(2000, 10000, 5.0, np.random.default_rng(0))
    # pi * 5^2 = 78.5 terminals per customer away from the edges, fewer near them
    assert 65 < profiles.nb_terminals.mean() < 78.5
