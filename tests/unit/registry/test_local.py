from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlsd.registry.artifacts import sha256
from mlsd.registry.local import LocalArtifactStore


def test_an_interrupted_write_leaves_no_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalArtifactStore(tmp_path)
    data = b"x" * 10_000
    digest = sha256(data)

    def crash(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        store.put(digest, data)
    assert not store.exists(digest)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    monkeypatch.undo()
    store.put(digest, data)
    assert store.get(digest) == data
