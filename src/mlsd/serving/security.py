"""Access control and body size limit, as one pure ASGI middleware.

- `/metrics` and the health endpoints are always open;
- `/admin/...` needs `Authorization: Bearer <admin token>` (refused when no token is set);
- the dashboard page `/ui` and its files `/ui/static/...` hold no data and are open; its
  data `/ui/data` needs the admin bearer token when one is set, and is open like
  `/metrics` (which exports the same figures) when none is; the scoring key, a client's
  credential, does not open it;
- everything else needs the scoring key (`X-API-Key: <key>` or `Authorization: Bearer <key>`)
  when one is configured;
- a body over `max_body_bytes` is refused with 413 before the app reads it.

Those refusals are counted in `mlsd_request_duration_seconds` like any answer (by the
route template the request would have reached), since they never reach the app's
metrics middleware.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from mlsd.errors import AuthError, MlsdError, PayloadTooLargeError
from mlsd.serving.schemas import error_body

if TYPE_CHECKING:
    from mlsd.inference.metrics import ServingMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/metrics", "/v2/health/live", "/v2/health/ready", "/healthz"})
ADMIN_PREFIX = "/admin/"
UI_PAGE, UI_STATIC, UI_PREFIX = "/ui", "/ui/static/", "/ui/"


async def send_error(
    send: Send, exc: MlsdError, headers: list[tuple[bytes, bytes]], path: str = ""
) -> None:
    """Answer with the JSON error body of `path`'s API (`ErrorBody`, or V2's on /v2)."""
    body = json.dumps(error_body(type(exc).__name__, exc.message, exc.field, path)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.http_status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class SecurityMiddleware:
    """Checks credentials and body size, then hands the request to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str,
        admin_token: str,
        max_body_bytes: int,
        metrics: ServingMetrics | None = None,
        route_of: Callable[[Scope], str] | None = None,
    ):
        self.app = app
        self.api_key = api_key
        self.admin_token = admin_token
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        headers: dict[bytes, bytes] = dict(scope["headers"])
        try:
            self._authorize(path, headers)
            length = headers.get(b"content-length")
            if length is not None:
                if not length.isdigit() or int(length) > self.max_body_bytes:
                    raise PayloadTooLargeError(
                        f"request body over {self.max_body_bytes} bytes", field="body"
                    )
            elif scope.get("method") in ("POST", "PUT", "PATCH"):
                receive = await self._buffered(receive)
        except AuthError as exc:
            await send_error(send, exc, [(b"www-authenticate", b"Bearer")], path)
            self._observe(scope, exc.http_status, started)
            return
        except PayloadTooLargeError as exc:
            await send_error(send, exc, [(b"connection", b"close")], path)
            self._observe(scope, exc.http_status, started)
            return
        await self.app(scope, receive, send)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        if self.metrics is not None:
            route = self.route_of(scope) if self.route_of is not None else "unmatched"
            seconds = time.perf_counter() - started
            self.metrics.observe_request(route, scope.get("method", ""), status, seconds)

    def _authorize(self, path: str, headers: dict[bytes, bytes]) -> None:
        if path in OPEN_PATHS or path in (UI_PAGE, UI_PREFIX) or path.startswith(UI_STATIC):
            return
        bearer = headers.get(b"authorization", b"").decode("latin-1")
        token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else ""
        if path.startswith(UI_PREFIX):
            if self.admin_token and not _same(token, self.admin_token):
                raise AuthError(
                    "the dashboard's data needs the admin bearer token", field="authorization"
                )
            return
        if path.startswith(ADMIN_PREFIX):
            if not self.admin_token:
                raise AuthError(
                    "admin endpoints are off: set MLSD_ADMIN_TOKEN", field="authorization"
                )
            if not _same(token, self.admin_token):
                raise AuthError(
                    "admin endpoints need the admin bearer token", field="authorization"
                )
            return
        if not self.api_key:
            return
        key = headers.get(b"x-api-key", b"").decode("latin-1") or token
        if not _same(key, self.api_key):
            raise AuthError("missing or wrong API key (X-API-Key header)", field="x-api-key")

    async def _buffered(self, receive: Receive) -> Receive:
        """Read a body of unknown length up to the limit, then replay it."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLargeError(
                    f"request body over {self.max_body_bytes} bytes", field="body"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay
