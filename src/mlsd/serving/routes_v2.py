"""Open Inference Protocol (V2, as KServe and Triton speak it) over the model host.

Inputs: either one tensor `input` of shape [n, k] (or [k] for one row), or one
tensor per feature, named by the signature, of shape [n] or [n, 1]. Output:
`probabilities` FP32 [n, 2] (column 1 is the fraud probability), as the ONNX
model itself returns.

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
from mlsd.serving.routes_v1 import ERRORS, request_id_of, service_of
from mlsd.serving.schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    RequestInput,
    ResponseOutput,
    ServerMetadata,
    TensorMetadata,
)
from mlsd.serving.service import Service

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])

ModelName = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Version = Annotated[str, Path(max_length=12, pattern=r"^[0-9]{1,9}$")]
PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "lightgbm": "lightgbm"}


def _endpoint(service: Service, name: str, version: str | None) -> Endpoint:
    if version is None:
        return service.endpoint(name)
    return VersionEndpoint(service.host.get(name, version=int(version)))


def _metadata(service: Service, model: LoadedModel) -> ModelMetadata:
    versions = [str(m.version) for m in service.host.models() if m.name == model.name]
    return ModelMetadata(
        name=model.name,
        versions=versions,
        platform=PLATFORMS.get(model.runtime.name, model.runtime.name),
        inputs=[
            TensorMetadata(name=ONNX_INPUT, datatype="FP32", shape=[-1, len(model.feature_names)])
        ],
        outputs=[TensorMetadata(name=ONNX_OUTPUT, datatype="FP32", shape=[-1, 2])],
    )


def _matrix(inputs: list[RequestInput], names: tuple[str, ...]) -> np.ndarray:
    """The (n, k) float32 matrix the inputs describe."""
    for tensor in inputs:
        if tensor.datatype == "BYTES":
            raise ValidationError(f"tensor {tensor.name!r} must be numeric", field="inputs")
    k = len(names)
    if len(inputs) == 1 and inputs[0].name == ONNX_INPUT:
        tensor = inputs[0]
        values = np.asarray(tensor.flat(), dtype=np.float32)
        if len(tensor.shape) == 1 and tensor.shape[0] == k:
            return values.reshape(1, k)
        if len(tensor.shape) == 2 and tensor.shape[1] == k:
            return values.reshape(tensor.shape[0], k)
        raise ValidationError(
            f"tensor {ONNX_INPUT!r} must have shape [n, {k}], got {tensor.shape}",
            field="inputs.shape",
        )
    by_name = {t.name: t for t in inputs}
    unknown = sorted(set(by_name) - set(names))
    if unknown:
        raise ValidationError(
            f"unknown input {unknown[0]!r}: send {ONNX_INPUT!r} [n, {k}] or one tensor per "
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
        columns.append(np.asarray(tensor.flat(), dtype=np.float32))
    if len({len(c) for c in columns}) != 1:
        raise ValidationError("feature tensors have different lengths", field="inputs")
    return np.stack(columns, axis=1)


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
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("", response_model=ServerMetadata, responses=ERRORS, summary="Server metadata")
async def server_metadata() -> ServerMetadata:
    """Name, version and protocol extensions of this server."""
    return ServerMetadata(name="mlsd", version=__version__, extensions=[])


@router.get("/models/{name}", response_model=ModelMetadata, responses=ERRORS)
async def model_metadata(request: Request, name: ModelName) -> ModelMetadata:
    """Metadata of the version the model's endpoint serves."""
    service = service_of(request)
    return _metadata(service, _endpoint(service, name, None).current())


@router.get("/models/{name}/versions/{version}", response_model=ModelMetadata, responses=ERRORS)
async def version_metadata(request: Request, name: ModelName, version: Version) -> ModelMetadata:
    """Metadata of one loaded version."""
    service = service_of(request)
    return _metadata(service, _endpoint(service, name, version).current())


def _ready(service: Service, name: str, version: str | None) -> Response:
    if not service.ready:
        raise UnavailableError("models are still loading")
    _endpoint(service, name, version).current()
    return JSONResponse({"name": name, "ready": True})


@router.get("/models/{name}/ready", responses=ERRORS, summary="Model readiness")
async def model_ready(request: Request, name: ModelName) -> Response:
    """200 when the model is loaded and warmed; 404 when unknown."""
    return _ready(service_of(request), name, None)


@router.get("/models/{name}/versions/{version}/ready", responses=ERRORS)
async def version_ready(request: Request, name: ModelName, version: Version) -> Response:
    """200 when the version is loaded and warmed; 404 when unknown."""
    return _ready(service_of(request), name, version)


def _request_id(request: Request, body: InferenceRequest) -> str:
    """The caller's `X-Request-ID`, else the body's V2 `id`, else a fresh id."""
    if body.id and "x-request-id" not in request.headers:
        return body.id
    return request_id_of(request)


async def _infer(
    request: Request, name: str, version: str | None, body: InferenceRequest
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
    values = _matrix(body.inputs, current.feature_names)
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


@router.post("/models/{name}/infer", response_model=InferenceResponse, responses=ERRORS)
async def infer(request: Request, name: ModelName, body: InferenceRequest) -> InferenceResponse:
    """Score tensors with the version the model's endpoint serves."""
    return await _infer(request, name, None, body)


@router.post(
    "/models/{name}/versions/{version}/infer", response_model=InferenceResponse, responses=ERRORS
)
async def infer_version(
    request: Request, name: ModelName, version: Version, body: InferenceRequest
) -> InferenceResponse:
    """Score tensors with one loaded version."""
    return await _infer(request, name, version, body)
