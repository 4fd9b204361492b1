"""Request-time transforms: each feature defined once, rendered to SQL, numpy and Python.

A `RequestTransform` is declarative: it reads one field of the transaction (`amount`, or
`timestamp` as a UTC instant), optionally takes a calendar part of the time (`weekday`,
Monday 0 to Sunday 6, or `hour`, 0 to 23, both in UTC) and optionally compares the result
with a constant (1.0 when true, else 0.0). Every consumer renders the same definition:

- `sql()`: a DuckDB expression, for the batch pipeline and the point-in-time join. It works
  on the UTC instant (`epoch_us`), so the session's TimeZone cannot shift an hour or a day;
- `vector()`: numpy over µs since the epoch, for batches of online requests;
- `row()`: a Python function of one transaction (anything with `amount` and an aware
  `timestamp`, like `mlsd.data.transaction.Transaction`), for the serving hot path.

    >>> night = RequestTransform("TX_DURING_NIGHT", "timestamp", "hour", "<=", 6)
    >>> night.sql()
    'CAST(hour(make_timestamp(epoch_us("TX_DATETIME"))) <= 6 AS DOUBLE)'
    >>> from datetime import UTC, datetime
    >>> from mlsd.data.transaction import Transaction
    >>> night.row()(Transaction(1, 2, 3, 9.5, datetime(2026, 11, 21, 6, 59, tzinfo=UTC)))
    1.0
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from mlsd.data import schema
from mlsd.errors import ValidationError

DAY_US: Final = 86_400_000_000
HOUR_US: Final = 3_600_000_000

#: transform input -> the transaction column it reads (in datasets and request mappings)
INPUTS: Final = {"amount": schema.TX_AMOUNT, "timestamp": schema.TX_DATETIME}
PARTS: Final = ("weekday", "hour")
OPS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}

FloatArray = npt.NDArray[np.float64]


class Payment(Protocol):
    """What a row function reads: an amount and an aware time (a `Transaction` has both)."""

    @property
    def amount(self) -> float:
        """The amount paid."""
        ...

    @property
    def timestamp(self) -> datetime:
        """When, timezone-aware (UTC is the fast path)."""
        ...


RowFunction = Callable[[Payment], float]


@dataclass(frozen=True)
class RequestTransform:
    """`feature = float(part(input) op value)`; `part` and `op`/`value` are optional."""

    feature: str
    input: str
    part: str | None = None
    op: str | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        if not self.feature:
            raise ValidationError("a request transform needs a feature name", field="feature")
        if self.input not in INPUTS:
            known = ", ".join(INPUTS)
            raise ValidationError(
                f"transform {self.feature!r}: unknown input {self.input!r} (known: {known})",
                field="input",
            )
        if self.input == "timestamp" and self.part not in PARTS:
            raise ValidationError(
                f"transform {self.feature!r}: a timestamp needs a part ({', '.join(PARTS)}), "
                f"got {self.part!r}",
                field="part",
            )
        if self.input == "amount" and self.part is not None:
            raise ValidationError(
                f"transform {self.feature!r}: an amount has no part {self.part!r}", field="part"
            )
        if (self.op is None) != (self.value is None):
            raise ValidationError(
                f"transform {self.feature!r}: give both op and value, or neither", field="op"
            )
        if self.op is not None and self.op not in OPS:
            raise ValidationError(
                f"transform {self.feature!r}: unknown op {self.op!r} (known: {', '.join(OPS)})",
                field="op",
            )
        if self.value is not None and (
            isinstance(self.value, bool)
            or not isinstance(self.value, int | float)
            or not math.isfinite(self.value)
        ):
            raise ValidationError(
                f"transform {self.feature!r}: value must be a finite number, got {self.value!r}",
                field="value",
            )

    @property
    def column(self) -> str:
        """The transaction column this transform reads."""
        return INPUTS[self.input]

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-ready form (part of its view's version)."""
        return {
            "feature": self.feature,
            "input": self.input,
            "part": self.part,
            "op": self.op,
            "value": None if self.value is None else float(self.value),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestTransform:
        """Rebuild a transform from `to_dict` output."""
        try:
            return cls(
                feature=data["feature"],
                input=data["input"],
                part=data.get("part"),
                op=data.get("op"),
                value=data.get("value"),
            )
        except (KeyError, TypeError) as exc:
            raise ValidationError(
                f"invalid request transform {data!r}", field="transforms"
            ) from exc

    # renderings ----------------------------------------------------------------------------

    def sql(self, amount: str = schema.TX_AMOUNT, timestamp: str = schema.TX_DATETIME) -> str:
        """A DuckDB expression (DOUBLE; NULL in, NULL out) over the given column names."""
        if self.input == "amount":
            expr = f'CAST("{amount}" AS DOUBLE)'
        else:
            utc = f'make_timestamp(epoch_us("{timestamp}"))'  # naive UTC: no session TimeZone
            expr = f"(isodow({utc}) - 1)" if self.part == "weekday" else f"hour({utc})"
        if self.op is None:
            return expr if self.input == "amount" else f"CAST({expr} AS DOUBLE)"
        return f"CAST({expr} {self.op} {_literal(self.value, sql=True)} AS DOUBLE)"

    def vector(self, amount: npt.ArrayLike, us: npt.ArrayLike) -> FloatArray:
        """Numpy over amounts and UTC times (µs since the epoch, int64): float64 values."""
        x: npt.NDArray[Any]
        if self.input == "amount":
            x = np.asarray(amount, dtype=np.float64)
        else:
            when = np.asarray(us, dtype=np.int64)
            days = when // DAY_US  # floor: right before 1970 too
            x = (days + 3) % 7 if self.part == "weekday" else (when - days * DAY_US) // HOUR_US
        if self.op is not None:
            x = OPS[self.op](x, self.value)
        return np.asarray(x, dtype=np.float64)

    def row(self) -> RowFunction:
        """A Python function of one transaction, as cheap as a hand-written lambda."""
        return _row_function(self)


#: The request-time features every card payment has (the handbook's request view, section
#: 3.3): its amount, whether it happened on a weekend and at night, in UTC. A request view
#: may name these features without spelling out their transforms, and its canonical form
#: (hence its version) leaves out any transform equal to the standard one.
STANDARD: Final[dict[str, RequestTransform]] = {
    t.feature: t
    for t in (
        RequestTransform(schema.TX_AMOUNT, "amount"),
        RequestTransform("TX_DURING_WEEKEND", "timestamp", "weekday", ">=", 5),
        RequestTransform("TX_DURING_NIGHT", "timestamp", "hour", "<=", 6),
    )
}


def utc(when: datetime) -> datetime:
    """An aware time as UTC; naive times are refused (their offset is unknown)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValidationError("timestamp is naive; give a UTC-aware time", field="timestamp")
    return when.astimezone(UTC)


def _literal(value: float | None, sql: bool = False) -> str:
    """`value` (a finite int or float, see validation) as a Python or DuckDB literal.

    Whole numbers below 2**53 are integers (exact against an hour, a weekday or a DOUBLE);
    in SQL anything else is cast to DOUBLE, never left a DECIMAL literal.
    """
    number = float(value or 0.0)
    if number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return f"{number!r}::DOUBLE" if sql else repr(number)


@lru_cache(maxsize=256)
def _row_function(t: RequestTransform) -> RowFunction:
    """Compile `t` into a plain Python function, once per distinct transform.

    Like dataclasses' generated `__init__`, the source is assembled from a closed set of
    tokens (the validated input, part and operator, and a number), never from free text: a
    composition of closures would cost one more call per level on the hot path.
    """
    if t.input == "amount":
        lines, x = [], "float(tx.amount)"
    else:
        lines = [
            "    ts = tx.timestamp",
            "    if ts.tzinfo is not UTC:",
            "        ts = utc(ts)",
        ]
        x = "ts.weekday()" if t.part == "weekday" else "ts.hour"
    if t.op is None:
        result = x if t.input == "amount" else f"float({x})"
    else:
        result = f"1.0 if {x} {t.op} {_literal(t.value)} else 0.0"
    source = "\n".join(["def fn(tx):", *lines, f"    return {result}", ""])
    namespace: dict[str, Any] = {"UTC": UTC, "utc": utc, "float": float}
    exec(compile(source, f"<request transform {t.feature}>", "exec"), namespace)
    fn: RowFunction = namespace["fn"]
    fn.__name__ = fn.__qualname__ = t.feature
    fn.__doc__ = f"Request-time feature {t.feature}: {t.sql()}"
    return fn


def select_sql(
    transforms: Sequence[RequestTransform],
    amount: str = schema.TX_AMOUNT,
    timestamp: str = schema.TX_DATETIME,
) -> str:
    """`expr AS "FEATURE", ...` for a SELECT list."""
    return ", ".join(f'{t.sql(amount, timestamp)} AS "{t.feature}"' for t in transforms)


def vector_block(
    transforms: Sequence[RequestTransform], amount: npt.ArrayLike, us: npt.ArrayLike
) -> FloatArray:
    """Every transform's values as one (n, len(transforms)) float64 matrix."""
    n = len(np.asarray(us))
    out = np.empty((n, len(transforms)), dtype=np.float64)
    for j, t in enumerate(transforms):
        out[:, j] = t.vector(amount, us)
    return out
