"""Window aggregations and derived expressions: declared, never evaluated from user strings.

An `Aggregation` is `function(column)` over the events of one entity in the event-time
window `(t - delay - window, t - delay]`:

- `delay = 0`: the window ends at the current event and includes it; events sharing its
  time but coming later (by the source's tie-break column, e.g. TRANSACTION_ID) are not
  counted yet, like the handbook's pandas `rolling('nD')`;
- `delay > 0`: the window ends `delay` before the event (the handbook's terminal risk is
  computed over labels at least 7 days old), so every event at one time gets one value.

Functions: `count` (events, no column), `sum`, `mean`, `min`, `max`, `std` (sample, ddof 1:
NULL under two events), `last` (the latest event's value) and `count_distinct`. An empty
window gives `count` 0 and `count_distinct` 0, the others NULL (NaN in frames).

A `Derived` feature is one named operation over aggregates and the current event's
columns, rendered to SQL and numpy from a closed table (no `eval`):

    >>> Derived("RISK", "ratio", ("FRAUDS", "N")).sql({"FRAUDS": "a0", "N": "a1"})
    'CASE WHEN (a1) IS NULL OR (a1) = 0 THEN 0.0 ELSE (a0) / (a1) END'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import numpy as np

from mlsd.errors import ValidationError

US: Final = timedelta(microseconds=1)
#: a standard deviation at most this much of max(1, |mean|) is zero: the rounding left by
#: equal values (a z-score over it would be noise), the same in SQL and Python
STD_EPS: Final = 1e-9

#: function -> (needs a column, needs a numeric column)
FUNCTIONS: Final[dict[str, tuple[bool, bool]]] = {
    "count": (False, False),
    "sum": (True, True),
    "mean": (True, True),
    "min": (True, True),
    "max": (True, True),
    "std": (True, True),
    "last": (True, True),
    "count_distinct": (True, False),
}

#: operation -> number of operands
OPERATIONS: Final[dict[str, int]] = {"ratio": 2, "zscore": 3, "diff": 2, "product": 2}


def _name_ok(name: str) -> bool:
    return bool(name) and name.replace("_", "").isalnum()


def to_us(delta: timedelta) -> int:
    """A duration in whole microseconds."""
    return int(delta / US)


@dataclass(frozen=True)
class Aggregation:
    """`name = function(column)` over `(t - delay - window, t - delay]`, per entity."""

    name: str
    function: str
    column: str | None
    window: timedelta
    delay: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if not _name_ok(self.name):
            raise ValidationError(f"invalid aggregation name {self.name!r}", field="name")
        if self.function not in FUNCTIONS:
            known = ", ".join(FUNCTIONS)
            raise ValidationError(
                f"aggregation {self.name!r}: unknown function {self.function!r} (known: {known})",
                field="function",
            )
        needs_column = FUNCTIONS[self.function][0]
        if needs_column and not self.column:
            raise ValidationError(
                f"aggregation {self.name!r}: {self.function} needs a column", field="column"
            )
        if not needs_column and self.column:
            raise ValidationError(
                f"aggregation {self.name!r}: count takes no column (got {self.column!r})",
                field="column",
            )
        if not isinstance(self.window, timedelta) or self.window < timedelta(minutes=1):
            raise ValidationError(
                f"aggregation {self.name!r}: window must be a timedelta of at least a minute",
                field="window",
            )
        if self.window % US or (isinstance(self.delay, timedelta) and self.delay % US):
            raise ValidationError(
                f"aggregation {self.name!r}: window and delay must be whole microseconds",
                field="window",
            )
        if not isinstance(self.delay, timedelta) or self.delay < timedelta(0):
            raise ValidationError(
                f"aggregation {self.name!r}: delay must be a timedelta >= 0", field="delay"
            )

    @property
    def window_us(self) -> int:
        """The window length in microseconds."""
        return to_us(self.window)

    @property
    def delay_us(self) -> int:
        """The delay in microseconds."""
        return to_us(self.delay)

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-ready form (part of its view's version)."""
        return {
            "name": self.name,
            "function": self.function,
            "column": self.column,
            "window_us": self.window_us,
            "delay_us": self.delay_us,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Aggregation:
        """Rebuild from `to_dict` output."""
        try:
            return cls(
                name=data["name"],
                function=data["function"],
                column=data.get("column"),
                window=timedelta(microseconds=int(data["window_us"])),
                delay=timedelta(microseconds=int(data.get("delay_us", 0))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"invalid aggregation {data!r}", field="aggregations") from exc


@dataclass(frozen=True)
class Derived:
    """`name = operation(*args)`, args being aggregation names or current-event columns.

    - `ratio(a, b)`: a / b, `default` when b is 0 or NULL (a fraud rate over no event: 0);
    - `zscore(x, mean, std)`: (x - mean) / std, `default` when std is NULL or zero (at
      most `STD_EPS` of max(1, |mean|): equal values leave rounding, not spread);
    - `diff(a, b)`: a - b; `product(a, b)`: a * b.
    """

    name: str
    operation: str
    args: tuple[str, ...]
    default: float = 0.0

    def __post_init__(self) -> None:
        if not _name_ok(self.name):
            raise ValidationError(f"invalid derived feature name {self.name!r}", field="name")
        if self.operation not in OPERATIONS:
            known = ", ".join(OPERATIONS)
            raise ValidationError(
                f"derived {self.name!r}: unknown operation {self.operation!r} (known: {known})",
                field="operation",
            )
        object.__setattr__(self, "args", tuple(self.args))
        if len(self.args) != OPERATIONS[self.operation] or not all(
            isinstance(a, str) and _name_ok(a) for a in self.args
        ):
            raise ValidationError(
                f"derived {self.name!r}: {self.operation} takes {OPERATIONS[self.operation]} "
                f"names, got {self.args!r}",
                field="args",
            )
        if (
            isinstance(self.default, bool)
            or not isinstance(self.default, int | float)
            or not math.isfinite(self.default)
        ):
            raise ValidationError(
                f"derived {self.name!r}: default must be a finite number", field="default"
            )

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-ready form (part of its view's version)."""
        return {
            "name": self.name,
            "operation": self.operation,
            "args": list(self.args),
            "default": float(self.default),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Derived:
        """Rebuild from `to_dict` output."""
        try:
            return cls(
                data["name"], data["operation"], tuple(data["args"]), data.get("default", 0.0)
            )
        except (KeyError, TypeError) as exc:
            raise ValidationError(f"invalid derived feature {data!r}", field="derived") from exc

    def sql(self, refs: Mapping[str, str]) -> str:
        """A DuckDB DOUBLE expression; `refs` maps each arg to its SQL expression."""
        a = [f"({refs[x]})" for x in self.args]
        d = f"{float(self.default)!r}"
        if self.operation == "ratio":
            return f"CASE WHEN {a[1]} IS NULL OR {a[1]} = 0 THEN {d} ELSE {a[0]} / {a[1]} END"
        if self.operation == "zscore":
            return (
                f"CASE WHEN {a[2]} IS NULL OR {a[2]} <= {STD_EPS!r} * greatest(1.0, abs({a[1]})) "
                f"THEN {d} ELSE ({a[0]} - {a[1]}) / {a[2]} END"
            )
        sign = "-" if self.operation == "diff" else "*"
        return f"CAST({a[0]} {sign} {a[1]} AS DOUBLE)"

    def value(self, args: Mapping[str, float | None]) -> float:
        """The same operation on Python numbers (None or NaN for NULL)."""
        v = [_num(args[x]) for x in self.args]
        return float(_PY[self.operation](v, float(self.default)))


def _num(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _ratio(v: list[float], d: float) -> float:
    return d if math.isnan(v[1]) or v[1] == 0 else v[0] / v[1]


def _zscore(v: list[float], d: float) -> float:
    tiny = math.isnan(v[2]) or v[2] <= STD_EPS * max(1.0, abs(v[1]))
    return d if tiny else (v[0] - v[1]) / v[2]


_PY: Final[dict[str, Callable[[list[float], float], float]]] = {
    "ratio": _ratio,
    "zscore": _zscore,
    "diff": lambda v, d: v[0] - v[1],
    "product": lambda v, d: v[0] * v[1],
}


def window_value(function: str, values: np.ndarray) -> float | None:
    """One aggregate over the values in a window, in arrival order (the reference rule)."""
    n = len(values)
    if function == "count":
        return float(n)
    if function == "count_distinct":
        return float(len(set(values.tolist())))
    if n == 0:
        return None
    x = values.astype(np.float64)
    if function == "sum":
        return float(x.sum())
    if function == "mean":
        return float(x.mean())
    if function == "min":
        return float(x.min())
    if function == "max":
        return float(x.max())
    if function == "last":
        return float(x[-1])
    return None if n < 2 else float(x.std(ddof=1))  # std
