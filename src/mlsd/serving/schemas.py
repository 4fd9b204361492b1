"""Request and response bodies of the serving API (REST v1 and Open Inference Protocol V2).

Validation lives here, once: finite numbers, non-negative amounts, timezone-aware
timestamps, V2 tensors whose data match their shape and datatype. Handlers get
objects that are already correct.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
    model_validator,
)

from mlsd.data.transaction import Transaction

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def _integral(value: float) -> int:
    if not value.is_integer():
        raise ValueError("Input should be a valid integer")
    return int(value)


#: The largest id: 2**53 - 1, the largest integer every JSON client holds exactly
#: (RFC 8259, section 6), so an id survives a round trip through any of them.
MAX_ID = 2**53 - 1

#: A non-negative id. JSON Schema's `integer` holds `1.0` too, so an integral float is
#: taken, as the second member of a union: plain ints are checked in Rust and never reach
#: Python. Strings, booleans and `1.5` are refused.
EntityId = Annotated[
    Annotated[int, Strict(), Field(ge=0, le=MAX_ID)]
    | Annotated[float, Strict(), Field(ge=0, le=MAX_ID), AfterValidator(_integral)],
    Field(union_mode="left_to_right"),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_ID}),
]


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _aware(value: datetime) -> datetime:
    """A timezone-aware time between 1970 and 2200, as UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp needs a timezone (e.g. a trailing Z)")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = EARLIEST - timedelta(days=1) if value.year < 2000 else LATEST
    if not EARLIEST <= utc < LATEST:
        raise ValueError("timestamp must be between 1970 and 2200")
    return utc


#: In the spec: a date-time with its offset (required) in the years 1971-2199, which the
#: server always takes whatever the offset (it takes a few hours more at both ends).
AwareDatetime = Annotated[
    datetime,
    AfterValidator(_aware),
    Field(
        json_schema_extra={
            "pattern": r"^(197[1-9]|19[89][0-9]|2[01][0-9]{2})-.*(Z|z|[+-][0-9]{2}:[0-9]{2})$"
        }
    ),
]


_SKIP = frozenset({"body", "one", "batch", "query", "path", "header", "constrained-int"})


def field_of(loc: Sequence[Any]) -> str:
    """The offending field of a pydantic error location, e.g. `transactions.0.amount`."""
    parts = [str(p) for p in loc if str(p) not in _SKIP and not str(p).startswith("function-")]
    return ".".join(parts) or "body"


class TransactionBody(BaseModel):
    """One raw card payment, as the terminal sends it (validated; `to_domain()` for scoring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transaction_id: EntityId
    customer_id: EntityId
    terminal_id: EntityId
    amount: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False, strict=True)]
    timestamp: AwareDatetime

    def to_domain(self) -> Transaction:
        """The domain record scoring takes, its time in the standard library's UTC.

        pydantic parses a zone into its own `TzInfo`, whose offset is a call into Rust:
        every later subtraction (feature ages, the log's timestamps) would cost 2.5x.
        """
        ids = cast(tuple[int, int, int], (self.transaction_id, self.customer_id, self.terminal_id))
        return Transaction(*ids, self.amount, self.timestamp.astimezone(UTC))


class ScoreBatch(BaseModel):
    """Several transactions scored in one call."""

    model_config = ConfigDict(extra="forbid")

    transactions: Annotated[list[TransactionBody], Field(min_length=1, max_length=1024)]


ScoreRequest = TransactionBody | ScoreBatch


class ScoreResult(BaseModel):
    """The verdict for one transaction."""

    transaction_id: int
    score: float
    decision: Literal["fraud", "legit"]
    threshold: float
    model: str
    version: int
    #: The variant that answered (the alias it follows, e.g. `champion`, or a rollout arm).
    variant: str
    features: dict[
        str, Literal["present", "missing", "expired", "future", "unavailable", "request"]
    ]
    degraded: bool
    cached: bool


class ScoreResponse(BaseModel):
    """Every verdict of one call, with the time it took inside the server."""

    request_id: str
    results: list[ScoreResult]
    degraded: bool
    latency_ms: float


class ErrorBody(BaseModel):
    """The body of every REST error answer (`/v1`, `/admin`): its kind, message and field."""

    error: str
    message: str
    field: str | None = None


class V2ErrorBody(BaseModel):
    """An Open Inference Protocol error: `error` is the message, which V2 clients show
    (tritonclient reads only that key); `field` names the culprit when one does."""

    error: str
    field: str | None = None


def is_v2(path: str) -> bool:
    """Whether `path` is an Open Inference Protocol route (its errors take the OIP shape)."""
    return path == "/v2" or path.startswith("/v2/")


def error_body(kind: str, message: str, field: str | None, path: str) -> dict[str, str | None]:
    """The error answer for a request to `path`: `V2ErrorBody` on /v2, else `ErrorBody`."""
    if is_v2(path):
        return {"error": message, "field": field}
    return {"error": kind, "message": message, "field": field}


# --- Open Inference Protocol (V2) --------------------------------------------------------------

V2Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip

NUMERIC_TYPES = frozenset(
    {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64", "BOOL"}
)

Scalar = bool | int | float | str
#: Row-major tensor data, flat or nested up to three levels (as V2 clients send it).
NestedData = Scalar | list[Scalar] | list[list[Scalar]] | list[list[list[Scalar]]]

#: The values each integer datatype holds.
INT_RANGES: dict[str, tuple[int, int]] = {
    **{f"INT{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)},
    **{f"UINT{b}": (0, 2**b - 1) for b in (8, 16, 32, 64)},
}
#: The largest finite magnitude of each float datatype.
FLOAT_MAX: dict[str, float] = {
    "FP16": 65504.0,
    "FP32": 3.4028234663852886e38,
    "FP64": sys.float_info.max,
}


def _flatten(data: NestedData) -> list[Scalar]:
    if not isinstance(data, list):
        return [data]
    out: list[Scalar] = []
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _check_values(name: str, datatype: str, flat: list[Scalar]) -> None:
    """ValueError naming the tensor unless every value fits `datatype` (JSON data)."""
    if datatype == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise ValueError(f"tensor {name!r} of BOOL must hold true/false")
        return
    numbers: list[int | float] = []
    for value in flat:
        if isinstance(value, str | bool):
            raise ValueError(f"tensor {name!r} of {datatype} holds {value!r}, not a number")
        numbers.append(value)
    if datatype in INT_RANGES:
        low, high = INT_RANGES[datatype]
        for number in numbers:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError(f"tensor {name!r} of {datatype} holds {number!r}, not an integer")
            if not low <= number <= high:
                raise ValueError(
                    f"tensor {name!r} holds {number!r}, outside {datatype}'s range [{low}, {high}]"
                )
        return
    largest = FLOAT_MAX[datatype]
    for number in numbers:
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError(f"tensor {name!r} holds NaN or infinity")
        if abs(number) > largest:
            raise ValueError(f"tensor {name!r} holds {number!r}, outside {datatype}'s range")


class RequestInput(BaseModel):
    """One input tensor: a name, a shape, a datatype and row-major data (flat or nested), or,
    with the binary tensor data extension, `parameters.binary_data_size` bytes after the
    JSON header instead of `data`."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128)]
    shape: Annotated[list[Annotated[int, Field(ge=0, le=1_000_000)]], Field(max_length=8)]
    datatype: V2Datatype
    parameters: dict[str, Scalar] | None = None
    data: NestedData | None = None

    @model_validator(mode="after")
    def _check_data(self) -> RequestInput:
        if self.data is None:
            size = self.binary_size()
            if size is None:
                raise ValueError(
                    f"tensor {self.name!r} has no data (send `data`, or the binary extension's "
                    "parameters.binary_data_size)"
                )
            return self
        flat = _flatten(self.data)
        expected = math.prod(self.shape)
        if len(flat) != expected:
            raise ValueError(
                f"tensor {self.name!r} has {len(flat)} values but shape {self.shape} needs "
                f"{expected}"
            )
        if self.datatype in NUMERIC_TYPES:
            _check_values(self.name, self.datatype, flat)
        return self

    def binary_size(self) -> int | None:
        """Bytes of binary data this tensor has after the JSON header (None: JSON `data`)."""
        size = (self.parameters or {}).get("binary_data_size")
        if size is None:
            return None
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"tensor {self.name!r}: binary_data_size must be an integer >= 0")
        return size

    def flat(self) -> list[Scalar]:
        """The JSON data as one flat row-major list (empty for binary data)."""
        return [] if self.data is None else _flatten(self.data)


class RequestOutput(BaseModel):
    """An output the client asks for by name."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128)]
    parameters: dict[str, Scalar] | None = None


class InferenceRequest(BaseModel):
    """`POST /v2/models/{name}/infer` body."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(max_length=256)] | None = None
    parameters: dict[str, Scalar] | None = None
    inputs: Annotated[list[RequestInput], Field(min_length=1, max_length=64)]
    outputs: Annotated[list[RequestOutput], Field(max_length=64)] | None = None


class ResponseOutput(BaseModel):
    """One output tensor (without `data` when sent as binary: `parameters.binary_data_size`)."""

    name: str
    shape: list[int]
    datatype: V2Datatype
    parameters: dict[str, Scalar] | None = None
    data: list[float] | None = None


class InferenceResponse(BaseModel):
    """`POST /v2/models/{name}/infer` answer."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Scalar] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    """Name, datatype and shape (-1 for any) of a model input or output; for the model's
    input, `parameters.feature_names` lists its columns in order, comma-separated."""

    name: str
    datatype: V2Datatype
    shape: list[int]
    parameters: dict[str, Scalar] | None = None


class ModelMetadata(BaseModel):
    """`GET /v2/models/{name}` answer."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    """`GET /v2` answer."""

    name: str
    version: str
    extensions: list[str]


#: A registry model name (`mlsd.registry.names`): 1-64 of `A-Z a-z 0-9 _ . -`, starting with a
#: letter or digit, never `..` (written without look-ahead: JSON Schema generators and
#: pydantic's regex engine have none).
REGISTRY_NAME = r"[A-Za-z0-9](?:\.?[A-Za-z0-9_-])*\.?"
#: A registry alias: lower-case, starting with a letter, at most 32 characters.
REGISTRY_ALIAS = r"[a-z][a-z0-9_-]{0,31}"
NO_DOUBLE_DOT = {"not": {"pattern": r"\.\."}}


def _no_double_dot(value: str) -> str:
    if ".." in value:
        raise ValueError("a model name never holds '..'")
    return value


class ModelRef(BaseModel):
    """A model named by alias (`fraud@champion`) or version (`fraud/3`)."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[
        str,
        Field(
            min_length=3,
            max_length=97,
            pattern=rf"^[A-Za-z0-9][A-Za-z0-9_.\-]{{0,63}}(?:@{REGISTRY_ALIAS}|/[1-9][0-9]{{0,8}})$",
            json_schema_extra=NO_DOUBLE_DOT,
        ),
        AfterValidator(_no_double_dot),
    ]


class AliasMoveRequest(BaseModel):
    """Point an alias of a model at a version."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=rf"^{REGISTRY_NAME}$")]
    alias: Annotated[str, Field(min_length=1, max_length=32, pattern=rf"^{REGISTRY_ALIAS}$")]
    version: Annotated[int, Field(ge=1, le=2**31 - 1)]


class LoadedModelInfo(BaseModel):
    """One model version held by the host."""

    name: str
    version: int
    runtime: str
    aliases: list[str]
    feature_names: list[str]
    loaded_at: datetime


#: Dataset column names (`mlsd.data.schema`) accepted in place of the API's field names.
DATASET_NAMES = {
    "TRANSACTION_ID": "transaction_id",
    "CUSTOMER_ID": "customer_id",
    "TERMINAL_ID": "terminal_id",
    "TX_AMOUNT": "amount",
    "TX_DATETIME": "timestamp",
}


def transactions_from_records(records: Sequence[Mapping[Any, Any]]) -> list[Transaction]:
    """Validated transactions from API-named or dataset-named records (extra keys ignored)."""
    from pydantic import ValidationError as PydanticError

    from mlsd.errors import ValidationError

    out = []
    for i, record in enumerate(records):
        row = {DATASET_NAMES.get(str(k), str(k)): v for k, v in record.items()}
        row = {k: row[k] for k in TransactionBody.model_fields if k in row}
        if hasattr(row.get("timestamp"), "to_pydatetime"):
            row["timestamp"] = row["timestamp"].to_pydatetime()
        for key in ("transaction_id", "customer_id", "terminal_id"):
            if hasattr(row.get(key), "item"):
                row[key] = row[key].item()
        if hasattr(row.get("amount"), "item"):
            row["amount"] = float(row["amount"].item())
        try:
            out.append(TransactionBody.model_validate(row).to_domain())
        except PydanticError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValidationError(
                f"row {i}: {where}: {first['msg']}", field=f"rows[{i}].{where}"
            ) from exc
    return out
