"""Backends for the registry conformance suites: every metadata and artifact store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlsd.registry.artifacts import ArtifactStore
from mlsd.registry.metadata import MetadataStore


@pytest.fixture
def s3_bucket(s3_endpoint: str, run_id: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the local S3-compatible server (dummy credentials)."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"mlsd-{run_id}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return bucket


def metadata_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The `registry_db` URL of one metadata backend, isolated for this test."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("postgres_url")
    schema: str = request.getfixturevalue("postgres_schema")
    return f"{url}?schema={schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An isolated metadata URL for each backend."""
    return metadata_url(request.param, request, tmp_path)


@pytest.fixture
def metadata(db_url: str, tmp_path: Path) -> Iterator[MetadataStore]:
    from mlsd.registry.registry import open_metadata
    from mlsd.settings import Settings

    store = open_metadata(Settings(home=tmp_path, registry_db=db_url))
    yield store
    store.close()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def artifact_store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """Each artifact backend, opened from settings like the registry opens it."""
    from mlsd.registry.registry import open_artifacts
    from mlsd.settings import Settings

    if request.param == "local":
        return open_artifacts(Settings(home=tmp_path, artifacts=f"file://{tmp_path}/artifacts"))
    bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("s3_endpoint")
    settings = Settings(artifacts=f"s3://{bucket}/team/models", s3_endpoint_url=endpoint)
    return open_artifacts(settings)
