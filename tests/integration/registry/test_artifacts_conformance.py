"""One suite for every artifact backend (local folder, S3 through boto3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsd.errors import IntegrityError, ValidationError
from mlsd.registry import Registry
from mlsd.registry.artifacts import ArtifactStore, sha256
from mlsd.registry.loaders import load_lightgbm
from mlsd.registry.sqlite import SqliteMetadataStore
from mlsd.registry.testing import register_sample, sample_rows
from mlsd.settings import Settings


def test_put_get_exists(artifact_store: ArtifactStore) -> None:
    data = b"model bytes" * 1000
    digest = sha256(data)
    assert not artifact_store.exists(digest)
    artifact_store.put(digest, data)
    artifact_store.put(digest, data)  # idempotent
    assert artifact_store.exists(digest)
    assert artifact_store.get(digest) == data


def test_missing_blob_is_an_integrity_error(artifact_store: ArtifactStore) -> None:
    with pytest.raises(IntegrityError, match="missing"):
        artifact_store.get("a" * 64)


@pytest.mark.parametrize("digest", ["../../etc/passwd", "A" * 64, "abc", "a" * 63 + "/"])
def test_keys_must_be_digests(artifact_store: ArtifactStore, digest: str) -> None:
    with pytest.raises(ValidationError):
        artifact_store.put(digest, b"x")
    with pytest.raises(ValidationError):
        artifact_store.get(digest)


def test_registry_loads_and_verifies_through_the_store(
    artifact_store: ArtifactStore, tmp_path: Path
) -> None:
    registry = Registry(SqliteMetadataStore(tmp_path / "r.db"), artifact_store)
    mv = register_sample(registry)
    assert load_lightgbm(registry, mv).model.predict(sample_rows(3)).shape == (3,)
    digest = mv.artifacts["model.lgb.txt"]
    artifact_store.put(sha256(b"other"), b"other")
    # overwrite the blob behind the store's back: the next load must refuse it
    if hasattr(artifact_store, "root"):
        blob = artifact_store.root / digest[:2] / digest
        blob.write_bytes(b"corrupt")
    else:
        client = artifact_store._client  # type: ignore[attr-defined]
        client.put_object(
            Bucket=artifact_store.bucket,  # type: ignore[attr-defined]
            Key=artifact_store._key(digest),  # type: ignore[attr-defined]
            Body=b"corrupt",
        )
    with pytest.raises(IntegrityError, match="corrupt"):
        load_lightgbm(registry, mv)
    registry.close()


@pytest.mark.s3
def test_settings_select_s3_with_an_endpoint(
    s3_bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, artifacts=f"s3://{s3_bucket}/p", s3_endpoint_url=s3_endpoint)
    with Registry.open(settings) as registry:
        mv = register_sample(registry)
        assert registry.artifacts.describe() == f"s3://{s3_bucket}/p"
        assert registry.load_artifact(mv, "model.lgb.txt").startswith(b"tree")
