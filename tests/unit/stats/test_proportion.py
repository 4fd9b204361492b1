"""Wilson and Newcombe intervals against Newcombe's published tables (1998)."""

from __future__ import annotations

import pytest

from mlsd.errors import ValidationError
from mlsd.stats import newcombe, wilson


@pytest.mark.parametrize(
    ("s", "n", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
     (1, 29, 0.0061, 0.1718)],
)  # fmt: skip
def test_wilson_matches_newcombe_table_i(s: int, n: int, low: float, high: float) -> None:
    w = wilson(s, n)
    assert (round(w.low, 4), round(w.high, 4)) == (low, high)


@pytest.mark.parametrize(
    ("s1", "n1", "s2", "n2", "low", "high"),
    [(56, 70, 48, 80, 0.0524, 0.3339), (9, 10, 3, 10, 0.1705, 0.8090),
     (5, 56, 0, 29, -0.0381, 0.1926)],
)  # fmt: skip
def test_newcombe_matches_table_ii_method_10(
    s1: int, n1: int, s2: int, n2: int, low: float, high: float
) -> None:
    d = newcombe(s1, n1, s2, n2)
    assert (round(d.low, 4), round(d.high, 4)) == (low, high)


def test_an_empty_sample_is_the_whole_interval_and_bad_counts_are_refused() -> None:
    assert (wilson(0, 0).low, wilson(0, 0).high) == (0.0, 1.0)
    with pytest.raises(ValidationError, match="successes"):
        wilson(5, 3)
    with pytest.raises(ValidationError, match="confidence"):
        wilson(1, 3, confidence=1.5)
    with pytest.raises(ValidationError):
        newcombe(1, 0, 1, 2)
