"""Open Inference Protocol tensors: a request body in, the model's float32 matrix out, and back.

A body is JSON (any or no Content-Type: stock V2 clients such as tritonclient send none),
or, with the binary tensor data extension that tritonclient uses by default, a JSON
header of `Inference-Header-Content-Length` bytes followed by the raw little-endian data
of every input whose `parameters.binary_data_size` is set, in input order. Outputs go
back as binary the same way when the request asks (`parameters.binary_data_output`, or
an output's `parameters.binary_data`).

Every value must fit its datatype (INT8 128 is refused) and the model's float32 input
(1e39 is refused, never turned into infinity): a 422 naming the tensor. A body sent with
`Content-Encoding: gzip` or `deflate` (tritonclient's `request_compression_algorithm`) is
inflated first, up to the same byte limit as any body.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError as PydanticError

from mlsd.errors import PayloadTooLargeError, ValidationError
from mlsd.serving.schemas import InferenceRequest, InferenceResponse, RequestInput, field_of

HEADER_LENGTH = "inference-header-content-length"
#: Little-endian numpy dtypes of the datatypes the binary extension carries for numbers.
BINARY_TYPES: dict[str, str] = {
    "BOOL": "|b1", "UINT8": "|u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "|i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}  # fmt: skip
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Tensor:
    """One decoded input: its name, shape and values (flat, float32, all finite)."""

    name: str
    shape: list[int]
    values: np.ndarray


#: zlib's `wbits` for each Content-Encoding a V2 client may send.
ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def inflate(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """The body without its Content-Encoding; 413 past `limit` bytes inflated."""
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return raw
    wbits = ENCODINGS.get(encoding.strip().lower())
    if wbits is None:
        raise ValidationError(
            f"Content-Encoding {encoding!r} is not supported: send gzip, deflate or none",
            field="content-encoding",
        )
    inflater = zlib.decompressobj(wbits)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise ValidationError(f"the body is not valid {encoding}: {exc}", field="body") from None
    if len(body) > limit or inflater.unconsumed_tail:
        raise PayloadTooLargeError(f"request body over {limit} bytes inflated", field="body")
    return body


def parse_request(raw: bytes, header_length: str | None) -> tuple[InferenceRequest, list[Tensor]]:
    """The validated request and its decoded inputs; ValidationError naming the culprit."""
    binary = b""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(raw):
            raise ValidationError(
                f"Inference-Header-Content-Length {header_length!r} is not a length within "
                f"the {len(raw)}-byte body",
                field=HEADER_LENGTH,
            )
        raw, binary = raw[: int(header_length)], raw[int(header_length) :]
    if not raw.strip():
        raise ValidationError("the body is empty: send a JSON inference request", field="body")
    try:
        body = InferenceRequest.model_validate_json(raw)
    except PydanticError as exc:
        first = exc.errors(include_url=False)[0]
        field = field_of(first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ValidationError(f"{field}: {message}", field=field) from None
    return body, decode_inputs(body.inputs, binary)


def decode_inputs(inputs: list[RequestInput], binary: bytes) -> list[Tensor]:
    """Each input's values as float32, from its JSON data or its slice of `binary`."""
    out: list[Tensor] = []
    offset = 0
    for tensor in inputs:
        if tensor.datatype == "BYTES":
            raise ValidationError(f"tensor {tensor.name!r} must be numeric", field="inputs")
        size = tensor.binary_size()
        if size is None:
            values = _json_values(tensor)
        else:
            values = _binary_values(tensor, binary[offset : offset + size], size)
            offset += size
        out.append(Tensor(tensor.name, tensor.shape, _as_float32(tensor.name, values)))
    if offset != len(binary):
        raise ValidationError(
            f"the body has {len(binary)} bytes of binary data but the inputs' "
            f"binary_data_size add up to {offset}",
            field=HEADER_LENGTH,
        )
    return out


def _json_values(tensor: RequestInput) -> np.ndarray:
    # float64 holds every value the schema let through (ints within their type's range,
    # floats within FP64's); the float32 check comes after
    return np.asarray(tensor.flat(), dtype=np.float64)


def _binary_values(tensor: RequestInput, chunk: bytes, size: int) -> np.ndarray:
    dtype = np.dtype(BINARY_TYPES[tensor.datatype])
    expected = math.prod(tensor.shape) * dtype.itemsize
    if len(chunk) != size or size != expected:
        raise ValidationError(
            f"tensor {tensor.name!r} needs {expected} bytes of {tensor.datatype} data for "
            f"shape {tensor.shape}, got {len(chunk)}",
            field="inputs",
        )
    return np.frombuffer(chunk, dtype=dtype)


def _as_float32(name: str, values: np.ndarray) -> np.ndarray:
    """`values` as the model's float32; refused if any is NaN, infinite or beyond float32."""
    if values.dtype.kind == "f":
        as64 = values.astype(np.float64)
        if not np.isfinite(as64).all():
            raise ValidationError(f"tensor {name!r} holds NaN or infinity", field=name)
        if values.dtype.itemsize > 4 and (np.abs(as64) > FLOAT32_MAX).any():
            worst = float(as64[np.argmax(np.abs(as64))])
            raise ValidationError(
                f"tensor {name!r} holds {worst!r}, outside float32's range (the model's input)",
                field=name,
            )
    return values.astype(np.float32)


def matrix(tensors: list[Tensor], names: tuple[str, ...], whole: str) -> np.ndarray:
    """The (n, k) float32 matrix: one tensor `whole` [n, k] (or [k]), or one per feature."""
    k = len(names)
    if len(tensors) == 1 and tensors[0].name == whole:
        tensor = tensors[0]
        if len(tensor.shape) == 1 and tensor.shape[0] == k:
            return tensor.values.reshape(1, k)
        if len(tensor.shape) == 2 and tensor.shape[1] == k:
            return tensor.values.reshape(tensor.shape[0], k)
        raise ValidationError(
            f"tensor {whole!r} must have shape [n, {k}], got {tensor.shape}",
            field="inputs.shape",
        )
    by_name = {t.name: t for t in tensors}
    if len(by_name) != len(tensors):
        raise ValidationError("two input tensors have the same name", field="inputs")
    unknown = sorted(set(by_name) - set(names))
    if unknown:
        raise ValidationError(
            f"unknown input {unknown[0]!r}: send {whole!r} [n, {k}] or one tensor per "
            "feature of the model signature",
            field="inputs",
        )
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValidationError(f"missing input {missing[0]!r}", field=missing[0])
    columns = []
    for name in names:
        tensor = by_name[name]
        if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise ValidationError(f"tensor {name!r} must have shape [n] or [n, 1]", field=name)
        columns.append(tensor.values)
    if len({len(c) for c in columns}) != 1:
        raise ValidationError("feature tensors have different lengths", field="inputs")
    return np.stack(columns, axis=1)


def wants_binary(body: InferenceRequest, output: str) -> bool:
    """Whether `output` goes back as binary data (the output's own choice wins)."""
    for requested in body.outputs or []:
        if requested.name == output and requested.parameters is not None:
            choice = requested.parameters.get("binary_data")
            if choice is not None:
                return choice is True
    return (body.parameters or {}).get("binary_data_output") is True


def encode_response(response: InferenceResponse, binary: bool) -> Response:
    """The answer as JSON, or as a JSON header plus raw little-endian FP32 outputs."""
    if not binary:
        return JSONResponse(response.model_dump(mode="json"))
    chunks: list[bytes] = []
    outputs = []
    for output in response.outputs:
        data = np.asarray(output.data or [], dtype="<f4").tobytes()
        chunks.append(data)
        parameters = {**(output.parameters or {}), "binary_data_size": len(data)}
        outputs.append(output.model_copy(update={"data": None, "parameters": parameters}))
    header = response.model_copy(update={"outputs": outputs}).model_dump_json(exclude_none=True)
    head = header.encode()
    return Response(
        head + b"".join(chunks),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
