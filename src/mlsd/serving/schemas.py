"""Request and response bodies of the serving API (REST v1 and Open Inference Protocol V2).

Validation lives here, once: finite numbers, non-negative amounts, timezone-aware
timestamps, V2 tensors whose data match their shape and datatype. Handlers get
objects that are already correct.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from mlsd.data.transaction import Transaction

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
EntityId = Annotated[int, Field(ge=0, le=2**63 - 1, strict=True)]


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


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


_SKIP = frozenset({"body", "one", "batch", "query", "path", "header"})


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
        """The domain record scoring takes."""
        return Transaction(
            self.transaction_id, self.customer_id, self.terminal_id, self.amount, self.timestamp
        )


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
    """The body of every error answer."""

    error: str
    message: str
    field: str | None = None


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


class RequestInput(BaseModel):
    """One input tensor: a name, a shape, a datatype and row-major data (flat or nested)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128)]
    shape: Annotated[list[Annotated[int, Field(ge=0, le=1_000_000)]], Field(max_length=8)]
    datatype: V2Datatype
    parameters: dict[str, Scalar] | None = None
    data: NestedData

    @model_validator(mode="after")
    def _check_data(self) -> RequestInput:
        flat = _flatten(self.data)
        expected = math.prod(self.shape)
        if len(flat) != expected:
            raise ValueError(
                f"tensor {self.name!r} has {len(flat)} values but shape {self.shape} needs "
                f"{expected}"
            )
        if self.datatype in NUMERIC_TYPES:
            for value in flat:
                if isinstance(value, str):
                    raise ValueError(f"tensor {self.name!r} of {self.datatype} holds a string")
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f"tensor {self.name!r} holds NaN or infinity")
        return self

    def flat(self) -> list[Scalar]:
        """The data as one flat row-major list."""
        return _flatten(self.data)


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
    """One output tensor."""

    name: str
    shape: list[int]
    datatype: V2Datatype
    parameters: dict[str, Scalar] | None = None
    data: list[float]


class InferenceResponse(BaseModel):
    """`POST /v2/models/{name}/infer` answer."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Scalar] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    """Name, datatype and shape (-1 for any) of a model input or output."""

    name: str
    datatype: V2Datatype
    shape: list[int]


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


class ModelRef(BaseModel):
    """A model named by alias (`fraud@champion`) or version (`fraud/3`)."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.\-]+[@/].+$")]


class AliasMoveRequest(BaseModel):
    """Point an alias of a model at a version."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
    alias: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
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
