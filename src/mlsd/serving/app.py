"""The serving app factory: routes, one error handler, metrics and security middleware.

`create_app(settings)` builds every backend from settings; tests and the demo
pass a ready `Service` instead.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from mlsd import __version__
from mlsd.errors import MlsdError
from mlsd.inference.metrics import CONTENT_TYPE, ServingMetrics
from mlsd.serving import routes_admin, routes_rollouts, routes_ui, routes_v1, routes_v2, tuning
from mlsd.serving.hotpath import FrontedApp, HotPaths, score_handler
from mlsd.serving.schemas import error_body, field_of
from mlsd.serving.security import ASGIApp, Message, Receive, Scope, SecurityMiddleware, Send
from mlsd.serving.service import ServeOptions, Service
from mlsd.settings import Settings, get_settings

log = logging.getLogger(__name__)


def _error(
    request: Request,
    status: int,
    kind: str,
    message: str,
    field: str | None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """One error answer: `ErrorBody`, or `V2ErrorBody` on the Open Inference Protocol routes."""
    body = error_body(kind, message, field, request.url.path)
    return JSONResponse(body, status_code=status, headers=headers)


async def _mlsd_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, MlsdError):  # pragma: no cover - registered for MlsdError only
        raise exc
    return _error(request, exc.http_status, type(exc).__name__, exc.message, exc.field)


async def _validation_error(request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    first = errors[0] if errors else {"loc": ("body",), "msg": str(exc)}
    if first.get("type") == "json_invalid":
        ctx = first.get("ctx")
        reason = ctx.get("error", "") if isinstance(ctx, dict) else ""
        message = f"body: not valid JSON ({reason})" if reason else "body: not valid JSON"
        return _error(request, 422, "ValidationError", message, "body")
    field = field_of(first.get("loc", ()))
    message = f"{field}: {first.get('msg', 'invalid')}"
    return _error(request, 422, "ValidationError", message, field)


_OPERATIONS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _allowed(request: Request, default: str) -> str:
    """Every method the spec documents on this path: Starlette names only the first route's,
    so a path served by two routes (GET and POST of a collection) would lose one."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(request.url.path):
            methods.update(m.upper() for m in operations if m in _OPERATIONS)
    return ", ".join(sorted(methods)) if methods else default


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (no route, wrong method, unreadable body) in mlsd's shape."""
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover - registered for those
        raise exc
    path, status = request.url.path, exc.status_code
    if status == 404:
        return _error(request, 404, "NotFoundError", f"no route {path}", None, exc.headers)
    if status == 405:
        message = f"{request.method} is not allowed on {path}"
        headers = dict(exc.headers or {})
        headers["Allow"] = _allowed(request, headers.get("Allow", ""))
        return _error(request, 405, "MethodNotAllowedError", message, None, headers)
    if status == 400:  # FastAPI could not read the body as JSON (or form) at all
        return _error(request, 422, "ValidationError", "body: not valid JSON", "body")
    return _error(request, status, "HTTPError", str(exc.detail), None, exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug: the JSON error shape still (the traceback goes to the server log)."""
    return _error(request, 500, "MlsdError", "internal error; see the server log", None)


class MetricsMiddleware:
    """Times every request into `mlsd_request_duration_seconds` by route template."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.observe_request(path, method, status, time.perf_counter() - started)


def build_service(settings: Settings, options: ServeOptions | None = None) -> Service:
    """Every backend settings name: registry, feature store, cache, prediction log, jobs."""
    from mlsd.inference.cache import make_cache
    from mlsd.inference.host import ModelHost
    from mlsd.registry import Registry
    from mlsd.serving.wiring import open_features, open_jobs, open_prediction_log

    options = options or ServeOptions()
    metrics = ServingMetrics()
    features = open_features(settings)
    served = getattr(features, "view_versions", None)
    host = ModelHost(
        Registry.open(settings),
        served_views=served,
    )
    service = Service(
        settings,
        host,
        options=options,
        features=features,
        cache=make_cache(settings) if options.cache_predictions else None,
        prediction_log=open_prediction_log(settings) if options.log_predictions else None,
        metrics=metrics,
    )
    service.jobs = open_jobs(settings, service)
    if options.shadow_process:
        service.pipeline.use_shadow_process(settings, service.log_observer)
    service.owned = [host.registry, features]
    if options.monitor_drift:
        service.owned.insert(0, install_drift(service, options))
    if options.labels is not None:
        service.owned.insert(0, install_performance(service, options))
    return service


def install_performance(service: Service, options: ServeOptions, *, start: bool = True) -> Any:
    """The delayed-label performance monitor on the service's own prediction log: its
    gauges on the metrics registry, its figures on the dashboard, its thread started."""
    from datetime import timedelta
    from pathlib import Path

    from mlsd.errors import ConfigError
    from mlsd.monitoring.performance import RegistryReferences, labels_kind, open_labels
    from mlsd.monitoring.performance_live import LazyLabels, PerformanceMonitor

    if options.labels is None:
        raise ConfigError("no labels folder to measure performance with", field="labels")
    if service.prediction_log is None:
        raise ConfigError(
            "--labels needs the prediction log (this service logs no prediction)", field="labels"
        )
    folder = Path(options.labels)
    kind = labels_kind(folder)  # a bad folder fails here; a dataset's labels load later
    monitor = PerformanceMonitor(
        RegistryReferences(service.host.registry), service.prediction_log,
        LazyLabels(lambda: open_labels(folder)),
        window=timedelta(seconds=options.performance_window_s),
        every_s=options.performance_every_s, source=f"{kind} {folder}",
    )  # fmt: skip
    service.performance_monitor = monitor
    service.performance = monitor.provider()
    service.metrics.registry.register(monitor.collector)
    if start:
        monitor.start()
    return monitor


def install_drift(service: Service, options: ServeOptions) -> Any:
    """The live drift monitor as an observer, a load listener and a metrics collector."""
    from pathlib import Path

    from mlsd.monitoring.alerts import AlertEngine, AlertSink, LogSink, WebhookSink, load_rules
    from mlsd.monitoring.live import DriftMonitor, registry_profiles

    alerts = None
    if options.alert_rules:
        sinks: list[AlertSink] = [LogSink()]
        if options.alert_webhook:
            sinks.append(WebhookSink(options.alert_webhook))
        alerts = AlertEngine(load_rules(Path(options.alert_rules)), sinks)
    monitor = DriftMonitor(
        registry_profiles(service.host.registry),
        window_rows=options.drift_window_rows,
        window_s=options.drift_window_s,
        alerts=alerts,
    )
    service.pipeline.add_observer(monitor)
    service.drift = monitor
    service.host.on_load(monitor.prepare)
    service.metrics.registry.register(monitor)
    monitor.start()
    return monitor


def create_app(
    settings: Settings | None = None,
    *,
    service: Service | None = None,
    options: ServeOptions | None = None,
    hot_path: bool = True,
) -> FastAPI:
    """The serving app. Models load in the background after start; ready says when done.

    `hot_path=False` leaves `POST /v1/score` to its FastAPI route (same answers, slower):
    for comparing the two.
    """
    settings = settings or get_settings()
    svc = service or build_service(settings, options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader: asyncio.Future[None] | None = None
        stop = threading.Event()
        if svc.dashboard is not None:
            svc.dashboard.start()
        if not svc.loaded:  # the job worker starts once the models are loaded
            loader = asyncio.get_running_loop().run_in_executor(None, _load_quietly, svc, stop)
        else:
            if svc.options.tune_process:
                tuning.tune()
            svc.start_jobs()
        try:
            yield
        finally:
            stop.set()
            if loader is not None:
                await loader
            svc.close()

    app = FrontedApp(
        title="mlsd serving",
        version=__version__,
        description="Fraud scoring: REST v1 and the Open Inference Protocol (V2).",
        lifespan=lifespan,
        # mlsd exports its own Prometheus metrics; FastAPI's OpenTelemetry hooks would
        # otherwise look up providers and environment variables on every request
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # served by `_offline_docs`: FastAPI's default loads Swagger UI from a CDN
        redoc_url=None,
    )
    app.state.service = svc
    _offline_docs(app)
    app.add_exception_handler(MlsdError, _mlsd_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.include_router(routes_v1.router)
    app.include_router(routes_v2.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_rollouts.router)
    if svc.options.dashboard:
        routes_ui.install(app, svc)

    if svc.jobs is not None:
        from mlsd.serving import routes_jobs

        app.include_router(routes_jobs.router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        svc.observe_lag()
        return Response(svc.metrics.render(), media_type=CONTENT_TYPE)

    app.add_middleware(MetricsMiddleware, metrics=svc.metrics)
    hot = {("POST", "/v1/score"): score_handler(svc)} if hot_path else {}
    route_of = RouteTemplates(app)

    def front(stack: ASGIApp) -> ASGIApp:
        """Credentials and the body limit first, then the hot paths, then FastAPI."""
        return SecurityMiddleware(
            HotPaths(stack, hot, svc.metrics),
            api_key=settings.api_key,
            admin_token=settings.admin_token,
            max_body_bytes=settings.max_body_bytes,
            metrics=svc.metrics,
            route_of=route_of,
        )

    app.front = front
    return app


DOCS_ASSETS = "/docs/assets"


def _offline_docs(app: FastAPI) -> None:
    """`/docs` with Swagger UI's files served from the `swagger-ui-bundle` package, so the
    page works without internet (FastAPI's default page fetches them from a CDN)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


class RouteTemplates:
    """The route template a request's path would reach (`unmatched` if none): the metric
    label of answers given before routing (401, 413). Compiled once, on first use."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def __call__(self, scope: Scope) -> str:
        if self._compiled is None:
            paths = list(self.app.openapi().get("paths", {}))
            for route in self.app.routes:
                path = getattr(route, "path", None)
                if isinstance(path, str):
                    paths.append(path)
            self._compiled = [(compile_path(p)[0], p) for p in dict.fromkeys(paths)]
        asked = scope.get("path", "")
        for regex, template in self._compiled:
            if regex.match(asked):
                return template
        return "unmatched"


def _load_quietly(service: Service, stop: threading.Event) -> None:
    """Load the models, retrying until they are in the registry (or the app stops), then
    start the job worker (a requeued job run before the models loaded would fail).

    Until then scoring answers 503 and /v2/health/ready says why (`service.load_error`).
    """
    if not service.load_when_available(stop):
        return
    service.start_jobs()
    if service.options.tune_process:
        tuning.tune()  # after the models: they are alive for good too
