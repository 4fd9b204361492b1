"""The embedded artifact store: a folder of blobs named by sha256 (`ab/abcdef...`).

Each write goes to a temporary file in the same folder, is fsynced, then
renamed into place, so a killed writer never leaves a partial blob under a
real digest.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mlsd.errors import IntegrityError
from mlsd.registry.artifacts import check_digest


class LocalArtifactStore:
    """Blobs in `root/<first two hex>/<digest>`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / digest[:2] / digest

    def put(self, digest: str, data: bytes) -> None:
        path = self._path(digest)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, digest: str) -> bytes:
        path = self._path(digest)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise IntegrityError(
                f"artifact {digest[:12]}... is missing from {self.root}", field="artifacts"
            ) from exc

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def describe(self) -> str:
        return str(self.root)
