"""The artifact store interface: content-addressed bytes, keyed by their sha256.

A key is the hex sha256 of the content, so a name can never steer a write
outside the store, identical artifacts are stored once, and every read can be
verified. Writes are atomic (temporary object, then rename or a single PUT).
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

from mlsd.errors import IntegrityError, ValidationError

DIGEST_RE = re.compile(r"[0-9a-f]{64}")


def sha256(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """A digest must be 64 lower-case hex characters (it becomes a path or key)."""
    if not DIGEST_RE.fullmatch(digest):
        raise ValidationError(f"invalid sha256 digest {digest!r}", field="digest")
    return digest


def verified(digest: str, data: bytes, where: str) -> bytes:
    """`data` if it hashes to `digest`, else IntegrityError naming `where`."""
    actual = sha256(data)
    if actual != digest:
        raise IntegrityError(
            f"artifact {where} is corrupt: sha256 {actual[:12]}... != expected {digest[:12]}...",
            field="artifacts",
        )
    return data


class ArtifactStore(Protocol):
    """Immutable blobs keyed by sha256."""

    def put(self, digest: str, data: bytes) -> None:
        """Store `data` (whose sha256 is `digest`) unless already present."""
        ...

    def get(self, digest: str) -> bytes:
        """The stored bytes, unverified (IntegrityError when missing)."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether a blob is stored."""
        ...

    def describe(self) -> str:
        """Where the store lives, for messages."""
        ...
