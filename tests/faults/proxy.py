"""A TCP proxy the fault tests own, in front of a shared server, that can misbehave on cue.

The shared Redis and PostgreSQL cannot be stopped by one test (others use them), but a
proxy in front of them can make them look stopped, slow or gone to the code under test:

- `stall()`: stop forwarding bytes both ways (connections stay open, nothing is lost:
  what was sent is delivered at `resume()`), like a Redis `CLIENT PAUSE`, a GC pause or
  a network partition without resets;
- `drop()`: reset every open connection (a server restart, a failover, a killed
  backend), new connections are accepted again at once;
- `refuse()`: reset every open connection and refuse new ones (the server is down)
  until `resume()`.

It runs its own asyncio loop on a daemon thread; the controls are thread-safe and return
once the proxy is in the new state. `connections` counts the open client connections.

>>> import socket
>>> upstream = socket.create_server(("127.0.0.1", 0))
>>> proxy = FaultProxy("127.0.0.1", upstream.getsockname()[1]).start()
>>> client = socket.create_connection(("127.0.0.1", proxy.port))
>>> peer, _ = upstream.accept()
>>> client.sendall(b"ping"); peer.recv(4)
b'ping'
>>> proxy.stall(); client.sendall(b"late"); peer.settimeout(0.2)
>>> try:
...     peer.recv(4)
... except TimeoutError:
...     print("stalled")
stalled
>>> proxy.resume(); peer.settimeout(5); peer.recv(4)
b'late'
>>> for s in (client, peer, upstream): s.close()
>>> proxy.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
CHUNK = 65536


class FaultProxy:
    """Forwards `127.0.0.1:port` to `upstream_host:upstream_port`; stalls, drops, refuses."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy")
        self._thread.daemon = True
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._refusing = False

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Listen, forwarding."""
        self._thread.start()
        self._run(self._setup)
        return self

    def close(self) -> None:
        """Stop listening, reset every connection, end the loop."""
        self._run(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def url(self, url: str) -> str:
        """`url` (redis://host:port/..., postgresql://user@host:port/...) through the proxy."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    # -- faults -------------------------------------------------------------------------------

    def stall(self) -> None:
        """Stop forwarding (bytes wait in the sockets, nothing is lost)."""
        self._run(self._set_flowing, False)

    def drop(self) -> None:
        """Reset every open connection; new ones are forwarded."""
        self._run(self._reset_all)

    def refuse(self) -> None:
        """Reset every open connection and refuse new ones until `resume`."""
        self._run(self._refuse)

    def resume(self) -> None:
        """Forward again, and accept again."""
        self._run(self._resume)

    @property
    def connections(self) -> int:
        """Client connections open through the proxy."""
        return self._run(lambda: len(self._pairs))

    # -- inside the loop ----------------------------------------------------------------------

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        async def call() -> T:
            out = fn(*args)
            if asyncio.iscoroutine(out):
                out = await out
            return out  # type: ignore[no-any-return]

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=10)

    async def _setup(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    def _reset_all(self) -> None:
        for client, server in list(self._pairs):
            for writer in (client, server):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
        self._pairs.clear()

    async def _refuse(self) -> None:
        self._refusing = True
        if self._server is not None:
            self._server.close()
            self._server = None
        self._reset_all()

    async def _resume(self) -> None:
        self._set_flowing(True)
        if self._refusing:
            self._refusing = False
            await self._listen()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._reset_all()
        self._set_flowing(True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            for w in pair:
                with contextlib.suppress(Exception):
                    w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while data := await reader.read(CHUNK):
                await self._flowing.wait()  # a stall holds the bytes here
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
