"""The hot path: `POST /v1/score` answered as plain ASGI, before FastAPI's router.

A scoring request is tiny and frequent. FastAPI's per-request machinery (its
middleware stack, the router walk over every route, `Request` and `Response`
objects) costs about 35 µs here, as much as the feature lookup and the model
together. So the app hands the few hot routes straight to a plain ASGI handler
and everything else to FastAPI:

    SecurityMiddleware -> HotPaths -(POST /v1/score)-> score handler
                                   -(anything else)-> Starlette's middleware
                                                      -> MetricsMiddleware -> FastAPI

The two front layers sit outside even Starlette's own middleware (`FrontedApp`): its
error, telemetry and body-limit layers wrap each call and each `send` in Python, ~6 µs
a request, and the hot handler answers its own errors.

The handler shares its work with the documented FastAPI route
(`routes_v1.score_payload`), so both answer the same bytes; credentials and the
body limit are still checked once, by `SecurityMiddleware`, in front of both;
the request latency histogram gets the same labels as FastAPI's routes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import parse_qsl

from fastapi import FastAPI

from mlsd.errors import MlsdError
from mlsd.inference.metrics import ServingMetrics
from mlsd.serving.routes_v1 import request_id_from, score_payload
from mlsd.serving.security import ASGIApp, Receive, Scope, Send, send_error
from mlsd.serving.service import Service

log = logging.getLogger(__name__)

#: A hot handler: plain ASGI that returns the status code it answered with.
HotHandler = Callable[[Scope, Receive, Send], Awaitable[int]]


class ClientGone(Exception):  # noqa: N818 - a state, not an error anybody handles
    """The client disconnected before its body arrived."""


class FrontedApp(FastAPI):
    """A FastAPI app whose middleware stack is wrapped by `front` (set before the first
    request): the layers every request passes first, outside Starlette's own."""

    front: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack: ASGIApp = super().build_middleware_stack()
        return stack if self.front is None else self.front(stack)


class HotPaths:
    """Routes exact `(method, path)` pairs to hot handlers; the rest to `app`."""

    def __init__(
        self, app: ASGIApp, handlers: Mapping[tuple[str, str], HotHandler], metrics: ServingMetrics
    ) -> None:
        self.app = app
        self.handlers = dict(handlers)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            key = (scope["method"], scope["path"])
            handler = self.handlers.get(key)
            if handler is not None:
                started = time.perf_counter()
                status = await handler(scope, receive, send)
                self.metrics.observe_request(key[1], key[0], status, time.perf_counter() - started)
                return
        await self.app(scope, receive, send)


async def read_body(receive: Receive) -> bytes:
    """The whole request body (its size was already bounded by `SecurityMiddleware`)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def query_value(query_string: bytes, name: str) -> str | None:
    """The last value of one query parameter (as Starlette's `query_params.get`)."""
    if not query_string:
        return None
    value = None
    for key, found in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key == name:
            value = found
    return value


def header_value(scope: Scope, name: bytes) -> str:
    """One request header (lower-case name), or "" when absent."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def score_handler(service: Service) -> HotHandler:
    """`POST /v1/score` as a hot handler over `service`."""

    async def score(scope: Scope, receive: Receive, send: Send) -> int:
        started = time.perf_counter()
        request_id = request_id_from(header_value(scope, b"x-request-id"))
        try:
            raw = await read_body(receive)
            model = query_value(scope["query_string"], "model")
            body = await score_payload(service, raw, model, request_id, started)
        except ClientGone:
            return 499  # nginx's "client closed request": nothing to answer
        except MlsdError as exc:
            await send_error(send, exc, [(b"x-request-id", request_id.encode())])
            return exc.http_status
        except Exception:
            log.exception("POST /v1/score failed (request %s)", request_id)
            error = MlsdError("internal error; see the server log", field=None)
            await send_error(send, error, [(b"x-request-id", request_id.encode())])
            return 500
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return 200

    return score
