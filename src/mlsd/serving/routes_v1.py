"""REST v1: `POST /v1/score` scores raw transactions.

The response is built as plain JSON bytes (no second pydantic pass on the hot
path); its shape is declared by `ScoreResponse` for the OpenAPI spec.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response
from pydantic import Discriminator, Tag

from mlsd.serving.schemas import ErrorBody, ScoreBatch, ScoreResponse, Transaction
from mlsd.serving.service import Service

router = APIRouter(tags=["score"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (401, "missing or wrong credentials"),
        (404, "unknown model or version"),
        (409, "conflict with the served state"),
        (413, "body too large"),
        (422, "invalid input; `field` names the culprit"),
        (503, "not ready, or a backend is down"),
    )
}


def _kind(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "transactions" in value else "one"


ScoreBody = Annotated[
    Annotated[Transaction, Tag("one")] | Annotated[ScoreBatch, Tag("batch")],
    Discriminator(_kind),
]


def service_of(request: Request) -> Service:
    """The app's serving state."""
    service: Service = request.app.state.service
    return service


def request_id_of(request: Request) -> str:
    """The caller's `X-Request-ID` (if sane), else a fresh one."""
    given = request.headers.get("x-request-id", "")
    if 0 < len(given) <= 128 and given.isascii() and given.isprintable():
        return given
    return uuid.uuid4().hex


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    responses=ERRORS,
    summary="Score one transaction or a batch of them",
)
async def score(
    request: Request,
    body: Annotated[ScoreBody, Body()],
    model: Annotated[
        str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    ] = None,
) -> Response:
    """Online features + request-time features -> model -> score and decision per transaction."""
    started = time.perf_counter()
    service = service_of(request)
    txs = body.transactions if isinstance(body, ScoreBatch) else [body]
    request_id = request_id_of(request)
    batch = await service.scorer(model).score(txs, request_id)
    used = batch.model
    results = [
        {
            "transaction_id": tx.transaction_id,
            "score": score,
            "decision": decision,
            "threshold": used.threshold,
            "model": used.name,
            "version": used.version,
            "features": status,
            "degraded": batch.degraded,
            "cached": cached,
        }
        for tx, score, decision, status, cached in zip(
            txs, batch.scores.tolist(), batch.decisions(), batch.statuses, batch.cached.tolist(),
            strict=True,
        )
    ]  # fmt: skip
    payload = {
        "request_id": request_id,
        "results": results,
        "degraded": batch.degraded,
        "latency_ms": round((time.perf_counter() - started) * 1000.0, 3),
    }
    return Response(
        json.dumps(payload, separators=(",", ":")).encode(),
        media_type="application/json",
        headers={"x-request-id": request_id},
    )
