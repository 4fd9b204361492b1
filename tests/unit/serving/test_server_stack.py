"""The background server runs on uvloop and httptools (installed with mlsd), or what it is told."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest
from fastapi import FastAPI

from mlsd.serving.server import BackgroundServer


def _probe() -> FastAPI:
    app = FastAPI()

    @app.get("/loop")
    async def loop() -> dict[str, str]:
        return {"loop": type(asyncio.get_running_loop()).__module__}

    return app


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not installed on Windows")
def test_default_stack_is_uvloop_and_httptools() -> None:
    with BackgroundServer(_probe()) as server:
        answer = httpx.get(server.url + "/loop", timeout=5.0).json()
        assert answer["loop"].startswith("uvloop")
        assert server.http_protocol == "HttpToolsProtocol"


def test_plain_asyncio_and_h11_on_request() -> None:
    with BackgroundServer(_probe(), loop="asyncio", http="h11") as server:
        answer = httpx.get(server.url + "/loop", timeout=5.0).json()
        assert answer["loop"].startswith("asyncio")
        assert server.http_protocol == "H11Protocol"
