"""The dashboard page: `/ui` (HTML), `/ui/data` (its JSON), `/ui/static/...` (its scripts).

The page polls `/ui/data` every few seconds and draws it with plotly.js, served from the
`plotly` Python package's own copy (`plotly/package_data/plotly.min.js`, the `ui` extra):
no CDN, so it works without internet. The data is built by `mlsd.monitoring.dashboard`
from what the service already holds; nothing is added to the scoring path.

Access (`mlsd.serving.security`): the page and its static files hold no data and are open;
`/ui/data` needs the admin bearer token when `MLSD_ADMIN_TOKEN` is set (the page asks for
it), and is open like `/metrics` otherwise.
"""

from __future__ import annotations

import importlib.resources
from importlib.abc import Traversable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from mlsd.errors import MlsdError, NotFoundError, UnavailableError
from mlsd.monitoring.dashboard import Dashboard
from mlsd.serving.routes_rollouts import rollout_view
from mlsd.serving.routes_v1 import service_of
from mlsd.serving.service import Service

router = APIRouter(prefix="/ui", include_in_schema=False)

#: The page's own files (package data of `mlsd.serving`, folder `ui`), and their types.
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
PLOTLY_MISSING = "the dashboard's charts need plotly: pip install 'mlsd[ui]'"
ROLLOUTS_SHOWN = 10


def _ui_file(name: str) -> Traversable:
    return importlib.resources.files("mlsd.serving") / "ui" / name


def plotly_js() -> Traversable:
    """`plotly.min.js` of the installed `plotly` package (UnavailableError without it)."""
    try:
        found = importlib.resources.files("plotly") / "package_data" / "plotly.min.js"
    except ModuleNotFoundError:
        raise UnavailableError(PLOTLY_MISSING, field="plotly") from None
    if not found.is_file():
        raise UnavailableError(PLOTLY_MISSING + " (its plotly.min.js is missing)", field="plotly")
    return found


def plotly_version() -> str | None:
    """The installed plotly's version (cache-busts the script URL), None without it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("plotly")
    except PackageNotFoundError:
        return None


def rollouts(service: Service) -> dict[str, Any]:
    """The newest rollouts of the registry, as `/admin/rollouts` shows them."""
    agent = service.rollouts
    if agent is None:
        return {"available": False, "items": [], "error": None}
    try:
        found = agent.manager.rollouts()[:ROLLOUTS_SHOWN]
    except MlsdError as exc:  # the registry is down: the rest of the page still draws
        return {"available": True, "items": [], "error": exc.message}
    items = [rollout_view(agent, r).model_dump(mode="json") for r in found]
    return {"available": True, "items": items, "error": None}


def _dashboard(request: Request) -> tuple[Service, Dashboard]:
    service = service_of(request)
    if service.dashboard is None:  # pragma: no cover - the routes exist only with it
        raise NotFoundError("the dashboard is off on this server", field="ui")
    return service, service.dashboard


@router.get("")
async def page() -> HTMLResponse:
    """The dashboard page (HTML; its data comes from `/ui/data`)."""
    html = _ui_file("index.html").read_text(encoding="utf-8")
    html = html.replace("{{PLOTLY_VERSION}}", plotly_version() or "missing")
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@router.get("/data")
def data(request: Request) -> dict[str, Any]:
    """Everything the page draws (a thread of the pool: rollouts are read from the registry)."""
    service, dashboard = _dashboard(request)
    body = dashboard.data(
        service.host, service.drift, rollouts(service), performance=service.performance
    )
    body["ready"] = service.ready
    body["load_error"] = service.load_error
    return body


@router.get("/static/plotly.min.js")
async def plotly() -> Response:
    """plotly.js from the installed `plotly` package (503 naming the extra without it)."""
    found = plotly_js()
    return FileResponse(
        str(found),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The page's own script and style sheet."""
    media = STATIC.get(name)
    if media is None:
        raise NotFoundError(f"no file /ui/static/{name}", field="name")
    body = _ui_file(name).read_bytes()
    return Response(body, media_type=media, headers={"Cache-Control": "no-cache"})


def install(app: FastAPI, service: Service) -> Dashboard:
    """Add the routes, and the service's `Dashboard` (sampling starts with the app)."""
    if service.dashboard is None:
        service.dashboard = Dashboard(
            service.metrics, interval_s=service.options.dashboard_sample_s
        )
        service.owned.append(service.dashboard)
    app.include_router(router)
    return service.dashboard
