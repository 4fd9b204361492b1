"""Run the app under uvicorn: in the foreground (`mlsd serve`) or in a background thread.

One worker, uvloop and httptools when installed (uvicorn's `auto`; both are core
dependencies on Linux and macOS): against plain asyncio + h11 they lift the requests/s
of the whole stack (see docs/serving.md, "Performance").
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from mlsd.errors import UnavailableError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class BackgroundServer:
    """uvicorn serving `app` from a daemon thread, for the demo, tests and benchmarks."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        loop: str = "auto",
        http: str = "auto",
    ) -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            workers=1,
            log_level="warning",
            lifespan="on",
            loop=loop,  # auto: uvloop when installed
            http=http,  # auto: httptools when installed
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="mlsd-serve", daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://{self.host}:{self.port}"

    @property
    def http_protocol(self) -> str:
        """The HTTP protocol class uvicorn runs (`HttpToolsProtocol` or `H11Protocol`)."""
        cls = getattr(self._server.config, "http_protocol_class", None)
        return getattr(cls, "__name__", "not started")

    def start(self, timeout_s: float = 30.0) -> BackgroundServer:
        """Start and wait until the socket accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise UnavailableError(f"the server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask uvicorn to exit (lifespan shutdown runs: logs flushed) and wait for it."""
        self._server.should_exit = True
        self._thread.join(timeout=timeout_s)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
