"""Open Inference Protocol (V2, as KServe and Triton speak it) over the model host.

Inputs: either one tensor `input` of shape [n, k] (or [k] for one row), or one
tensor per feature, named by the signature, of shape [n] or [n, 1]. Output:
`probabilities` FP32 [n, 2] (column 1 is the fraud probability), as the ONNX
model itself returns. Bodies are JSON, or JSON plus binary tensor data (the
extension tritonclient uses by default; see `mlsd.serving.tensors`), with or
without a Content-Type. Errors take the protocol's shape, `{"error": "<message>"}`
(plus `field`), so V2 clients show the message.

Every row scored is appended to the prediction log with `endpoint="v2"`, the
input tensor's values as features, and request id `X-Request-ID` (else the body's
`id`, else a fresh one), suffixed `:{row}` when the request has several rows.

With a prediction cache, rows already scored by the same model version (the
pinned one for `/versions/{v}/infer`) come from the cache, counted as hits in
the metrics; the response's `parameters.cached_rows` says how many.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from mlsd import __version__
from mlsd.errors import UnavailableError, ValidationError
from mlsd.inference.endpoint import Endpoint, VersionEndpoint
from mlsd.inference.observers import ScoringRequest
from mlsd.inference.spec import LoadedModel
from mlsd.registry.formats import ONNX_INPUT, ONNX_OUTPUT
from mlsd.serving.routes_v1 import ERRORS, _inline_refs, request_id_of, service_of
from mlsd.serving.schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ResponseOutput,
    ServerMetadata,
    TensorMetadata,
    V2ErrorBody,
)
from mlsd.serving.service import Service
from mlsd.serving.tensors import (
    HEADER_LENGTH,
    Tensor,
    encode_response,
    inflate,
    matrix,
    parse_request,
    wants_binary,
)

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])

#: The REST error answers, in the protocol's shape.
V2_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {**spec, "model": V2ErrorBody} for code, spec in ERRORS.items()
}
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    **V2_ERRORS,
    200: {
        "description": "the outputs, as JSON or (binary tensor data extension) a JSON header "
        "of `Inference-Header-Content-Length` bytes followed by the raw outputs",
        "content": {"application/octet-stream": {"schema": {"type": "string"}}},
    },
}


def _json_body_schema() -> dict[str, Any]:
    """`InferenceRequest` as a JSON body holds it: every tensor with its `data` (the binary
    extension's `binary_data_size` needs the raw bytes after the JSON, which JSON cannot
    carry)."""
    schema = _inline_refs(InferenceRequest.model_json_schema())
    tensor = schema["properties"]["inputs"]["items"]
    tensor["required"] = [*tensor["required"], "data"]
    data = tensor["properties"]["data"]
    data["anyOf"] = [option for option in data["anyOf"] if option != {"type": "null"}]
    data.pop("default", None)
    return schema


INFER_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _json_body_schema()}},
    }
}

ModelName = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Version = Annotated[str, Path(max_length=12, pattern=r"^[0-9]{1,9}$")]
PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "lightgbm": "lightgbm"}


def _endpoint(service: Service, name: str, version: str | None) -> Endpoint:
    if version is None:
        return service.endpoint(name)
    return VersionEndpoint(service.host.get(name, version=int(version)), service.metrics)


def _metadata(service: Service, model: LoadedModel) -> ModelMetadata:
    versions = [str(m.version) for m in service.host.models() if m.name == model.name]
    return ModelMetadata(
        name=model.name,
        versions=versions,
        platform=PLATFORMS.get(model.runtime.name, model.runtime.name),
        inputs=[
            TensorMetadata(
                name=ONNX_INPUT,
                datatype="FP32",
                shape=[-1, len(model.feature_names)],
                parameters={"feature_names": ",".join(model.feature_names)},
            )
        ],
        outputs=[TensorMetadata(name=ONNX_OUTPUT, datatype="FP32", shape=[-1, 2])],
    )


@router.get("/health/live", summary="The server process answers")
async def live() -> dict[str, bool]:
    """Liveness."""
    return {"live": True}


@router.get(
    "/health/ready", summary="Models loaded and warmed", responses={503: {"model": dict[str, Any]}}
)
async def ready(request: Request) -> JSONResponse:
    """Readiness: 200 once every model is loaded and warmed, else 503."""
    service = service_of(request)
    ok = service.ready
    body: dict[str, Any] = {"ready": ok}
    if service.load_error:
        body["error"] = service.load_error
    lagging = service.host.lagging
    if lagging:  # still serving, but behind the registry: say so (and why)
        body["lagging"] = [
            {"model": f"{n}@{a}", "serving": served, "alias": wanted, "error": why}
            for (n, a), (served, wanted, why) in sorted(lagging.items())
        ]
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("", response_model=ServerMetadata, responses=V2_ERRORS, summary="Server metadata")
async def server_metadata() -> ServerMetadata:
    """Name, version and protocol extensions of this server."""
    return ServerMetadata(name="mlsd", version=__version__, extensions=["binary_tensor_data"])


@router.get(
    "/models/{name}",
    response_model=ModelMetadata,
    responses=V2_ERRORS,
    response_model_exclude_none=True,
)
async def model_metadata(request: Request, name: ModelName) -> ModelMetadata:
    """Metadata of the version the model's endpoint serves."""
    service = service_of(request)
    return _metadata(service, _endpoint(service, name, None).current())


@router.get(
    "/models/{name}/versions/{version}",
    response_model=ModelMetadata,
    responses=V2_ERRORS,
    response_model_exclude_none=True,
)
async def version_metadata(request: Request, name: ModelName, version: Version) -> ModelMetadata:
    """Metadata of one loaded version."""
    service = service_of(request)
    return _metadata(service, _endpoint(service, name, version).current())


def _ready(service: Service, name: str, version: str | None) -> Response:
    if not service.ready:
        raise UnavailableError("models are still loading")
    _endpoint(service, name, version).current()
    return JSONResponse({"name": name, "ready": True})


@router.get("/models/{name}/ready", responses=V2_ERRORS, summary="Model readiness")
async def model_ready(request: Request, name: ModelName) -> Response:
    """200 when the model is loaded and warmed; 404 when unknown."""
    return _ready(service_of(request), name, None)


@router.get("/models/{name}/versions/{version}/ready", responses=V2_ERRORS)
async def version_ready(request: Request, name: ModelName, version: Version) -> Response:
    """200 when the version is loaded and warmed; 404 when unknown."""
    return _ready(service_of(request), name, version)


def _request_id(request: Request, body: InferenceRequest) -> str:
    """The caller's `X-Request-ID`, else the body's V2 `id`, else a fresh id."""
    if body.id and "x-request-id" not in request.headers:
        return body.id
    return request_id_of(request)


async def _infer(
    request: Request, name: str, version: str | None, body: InferenceRequest, tensors: list[Tensor]
) -> InferenceResponse:
    service = service_of(request)
    endpoint = _endpoint(service, name, version)
    wanted = [o.name for o in body.outputs or []]
    for out in wanted:
        if out != ONNX_OUTPUT:
            raise ValidationError(
                f"unknown output {out!r}: this model has {ONNX_OUTPUT!r}", field="outputs"
            )
    current = endpoint.current()  # the version the tensor rows are built for
    values = matrix(tensors, current.feature_names, ONNX_INPUT)
    batch = await service.score(
        ScoringRequest(
            _request_id(request, body), "v2", values=values, model=name,
            version=None if version is None else int(version),
        )
    )  # fmt: skip
    fraud = batch.scores.astype(np.float32)
    probabilities = np.stack([1.0 - fraud, fraud], axis=1)
    model = batch.model
    cached = batch.cached
    return InferenceResponse(
        model_name=model.name,
        model_version=str(model.version),
        id=body.id,
        parameters=None if service.cache is None else {"cached_rows": int(cached.sum())},
        outputs=[
            ResponseOutput(
                name=ONNX_OUTPUT,
                shape=[len(values), 2],
                datatype="FP32",
                data=probabilities.reshape(-1).tolist(),
            )
        ],
    )


async def _answer(request: Request, name: str, version: str | None) -> Response:
    """Parse the body (JSON or binary extension), score it, answer in the form asked for."""
    service = service_of(request)
    _endpoint(service, name, version).current()  # 404 first: no model, no body
    limit = service.settings.max_body_bytes
    raw = inflate(await request.body(), request.headers.get("content-encoding"), limit)
    body, tensors = parse_request(raw, request.headers.get(HEADER_LENGTH))
    response = await _infer(request, name, version, body, tensors)
    return encode_response(response, wants_binary(body, ONNX_OUTPUT))


@router.post(
    "/models/{name}/infer",
    response_model=InferenceResponse,
    responses=INFER_RESPONSES,
    openapi_extra=INFER_OPENAPI,
)
async def infer(request: Request, name: ModelName) -> Response:
    """Score tensors with the version the model's endpoint serves."""
    return await _answer(request, name, None)


@router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=InferenceResponse,
    responses=INFER_RESPONSES,
    openapi_extra=INFER_OPENAPI,
)
async def infer_version(request: Request, name: ModelName, version: Version) -> Response:
    """Score tensors with one loaded version."""
    return await _answer(request, name, version)
