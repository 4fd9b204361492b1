"""REST v1: `POST /v1/score` scores raw transactions.

The response is built as plain JSON bytes (no second pydantic pass on the hot
path); its shape is declared by `ScoreResponse` for the OpenAPI spec.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import Discriminator, Tag, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import to_json

from mlsd.data.transaction import Transaction
from mlsd.errors import ValidationError
from mlsd.inference.observers import ScoringRequest
from mlsd.serving.schemas import ErrorBody, ScoreBatch, ScoreResponse, TransactionBody, field_of
from mlsd.serving.service import Service


class PlainRoute(APIRoute):
    """A route whose endpoint takes the `Request` and returns a `Response` itself.

    Documented like any route (its body and query through `openapi_extra`), but
    called without FastAPI's per-request dependency solving: the hot path
    validates the raw JSON bytes once, in Rust.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            response: Response = await endpoint(request)
            return response

        return handler


router = APIRouter(tags=["score"], route_class=PlainRoute)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (401, "missing or wrong credentials"),
        (404, "unknown model, version or route"),
        (405, "method not allowed on this path (`Allow` lists the allowed ones)"),
        (409, "conflict with the served state"),
        (413, "body too large"),
        (422, "invalid input; `field` names the culprit"),
        (503, "not ready, or a backend is down"),
    )
}


def _kind(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "transactions" in value else "one"


ScoreBody = Annotated[
    Annotated[TransactionBody, Tag("one")] | Annotated[ScoreBatch, Tag("batch")],
    Discriminator(_kind),
]


def service_of(request: Request) -> Service:
    """The app's serving state."""
    service: Service = request.app.state.service
    return service


_PREFIX = uuid.uuid4().hex[:12]
_COUNTER = itertools.count(1)


def request_id_of(request: Request) -> str:
    """The caller's `X-Request-ID` (if sane), else a fresh one."""
    return request_id_from(request.headers.get("x-request-id", ""))


def request_id_from(given: str) -> str:
    """`given` if it is a sane request id (1-128 printable ASCII), else a fresh one."""
    if 0 < len(given) <= 128 and given.isascii() and given.isprintable():
        return given
    return f"{_PREFIX}-{next(_COUNTER)}"


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its `$defs` references replaced by their content (for openapi_extra)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.rsplit("/", 1)[1]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out: dict[str, Any] = walk(schema)
    return out


SCORE_BODY: TypeAdapter[TransactionBody | ScoreBatch] = TypeAdapter(ScoreBody)
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")  # anchored: JSON Schema searches
SCORE_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline_refs(SCORE_BODY.json_schema())}},
    },
    "parameters": [
        {
            "name": "model",
            "in": "query",
            "required": False,
            "description": "score with this endpoint instead of the default one",
            "schema": {"type": "string", "maxLength": 128, "pattern": MODEL_NAME.pattern},
        }
    ],
}


def parse_score_body(raw: bytes) -> list[Transaction]:
    """Validate a `/v1/score` body straight from JSON bytes (one Rust pass, no dict detour)."""
    try:
        body = SCORE_BODY.validate_json(raw)
    except PydanticValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = field_of(first["loc"])
        raise ValidationError(f"{field}: {first['msg']}", field=field) from None
    if isinstance(body, ScoreBatch):
        return [tx.to_domain() for tx in body.transactions]
    return [body.to_domain()]


async def score_payload(
    service: Service, raw: bytes, model: str | None, request_id: str, started: float
) -> bytes:
    """The whole of `POST /v1/score` between the HTTP layers: body bytes in, JSON bytes out.

    Shared by the FastAPI route below and the plain-ASGI hot path (`mlsd.serving.hotpath`),
    so both answer the same bytes and raise the same `MlsdError`s.
    """
    if model is not None and not MODEL_NAME.fullmatch(model):
        raise ValidationError("model: not a model name", field="model")
    txs = parse_score_body(raw)
    batch = await service.score(ScoringRequest(request_id, "score", txs, model=model))
    used = batch.model
    variant = batch.variant
    results = [
        {
            "transaction_id": tx.transaction_id,
            "score": score,
            "decision": decision,
            "threshold": used.threshold,
            "model": used.name,
            "version": used.version,
            "variant": variant,
            "features": status,
            "degraded": batch.degraded,
            "cached": cached,
        }
        for tx, score, decision, status, cached in zip(
            txs, batch.scores.tolist(), batch.decisions, batch.statuses, batch.cached.tolist(),
            strict=True,
        )
    ]  # fmt: skip
    payload = {
        "request_id": request_id,
        "results": results,
        "degraded": batch.degraded,
        "latency_ms": round((time.perf_counter() - started) * 1000.0, 3),
    }
    return to_json(payload)


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    responses=ERRORS,
    summary="Score one transaction or a batch of them",
    openapi_extra=SCORE_OPENAPI,
)
async def score(request: Request) -> Response:
    """Online features + request-time features -> model -> score and decision per transaction.

    The app answers this route on its hot path (`mlsd.serving.hotpath`); this FastAPI form
    documents it and serves apps that include the router without the hot path.
    """
    started = time.perf_counter()
    request_id = request_id_of(request)
    body = await score_payload(
        service_of(request),
        await request.body(),
        request.query_params.get("model"),
        request_id,
        started,
    )
    return Response(body, media_type="application/json", headers={"x-request-id": request_id})
