"""Confidence intervals for a proportion (Wilson) and a difference of two (Newcombe).

Wilson's score interval keeps its coverage near the nominal level down to a handful of
events and never leaves [0, 1], where the textbook Wald interval (p ± z·se) collapses to a
point at 0 or n events: shadow disagreements and blocks are rare events, so that matters.
Newcombe's hybrid score interval (his method 10, 1998) combines two Wilson intervals into
one for p1 − p2 with the same virtues.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm

from mlsd.errors import ValidationError


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready."""
        return {"estimate": self.estimate, "low": self.low, "high": self.high,
                "confidence": self.confidence}  # fmt: skip


def _check(successes: int, n: int, field: str) -> None:
    if n < 0 or successes < 0 or successes > n:
        raise ValidationError(
            f"{field}: need 0 <= successes <= n, got {successes} of {n}", field=field
        )


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValidationError(f"confidence must be in (0, 1), not {confidence}", field="confidence")
    return float(norm.ppf(0.5 + confidence / 2.0))


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson's score interval for successes / n (n = 0: the whole of [0, 1]).

    Newcombe (1998, Table I) gives 0.2553-0.3662 for 81/263 and 0-0.1611 for 0/20:

    >>> w = wilson(81, 263)
    >>> round(w.estimate, 4), round(w.low, 4), round(w.high, 4)
    (0.308, 0.2553, 0.3662)
    >>> round(wilson(0, 20).high, 4)
    0.1611
    """
    _check(successes, n, "successes")
    z = _z(confidence)
    if n == 0:
        return Interval(0.0, 0.0, 1.0, confidence)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, low, high, confidence)


def newcombe(s1: int, n1: int, s2: int, n2: int, confidence: float = 0.95) -> Interval:
    """Newcombe's hybrid score interval for p1 − p2 (s1/n1 minus s2/n2).

    His 1998 paper (Table II, method 10) gives 0.0524 to 0.3339 for 56/70 − 48/80:

    >>> d = newcombe(56, 70, 48, 80)
    >>> round(d.estimate, 4), round(d.low, 4), round(d.high, 4)
    (0.2, 0.0524, 0.3339)
    """
    _check(s1, n1, "s1")
    _check(s2, n2, "s2")
    if n1 == 0 or n2 == 0:
        raise ValidationError("a difference of proportions needs both samples", field="n")
    a, b = wilson(s1, n1, confidence), wilson(s2, n2, confidence)
    p1, p2 = a.estimate, b.estimate
    d = p1 - p2
    low = d - math.sqrt((p1 - a.low) ** 2 + (b.high - p2) ** 2)
    high = d + math.sqrt((a.high - p1) ** 2 + (p2 - b.low) ** 2)
    return Interval(d, max(-1.0, low), min(1.0, high), confidence)
