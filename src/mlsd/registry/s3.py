"""S3 artifact store (boto3): AWS, MinIO or any S3-compatible server.

URL `s3://bucket/prefix`; `endpoint_url` points at a non-AWS server. Blobs are
keyed `prefix/sha256/<digest>`; a PUT is atomic, so a killed writer never
leaves a partial object. Credentials come from boto3's usual chain.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from mlsd.errors import ConfigError, IntegrityError, UnavailableError
from mlsd.registry.artifacts import check_digest


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"invalid S3 URL {url!r}: expected s3://bucket/prefix", field="artifacts")
    return parts.netloc, parts.path.strip("/")


class S3ArtifactStore:
    """Blobs in an S3 bucket under a prefix."""

    def __init__(self, url: str, endpoint_url: str | None = None, client: Any = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = parse_s3_url(url)
        self._client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )

    def _key(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.prefix}/sha256/{digest}" if self.prefix else f"sha256/{digest}"

    def _error(self, exc: Exception) -> UnavailableError:
        return UnavailableError(f"S3 bucket {self.bucket!r} failed: {exc}")

    def put(self, digest: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        if self.exists(digest):
            return
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(digest), Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc) from exc

    def get(self, digest: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(digest))
            return bytes(response["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise IntegrityError(
                    f"artifact {digest[:12]}... is missing from s3://{self.bucket}/{self.prefix}",
                    field="artifacts",
                ) from exc
            raise self._error(exc) from exc
        except BotoCoreError as exc:
            raise self._error(exc) from exc

    def exists(self, digest: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(digest))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._error(exc) from exc
        except BotoCoreError as exc:
            raise self._error(exc) from exc
        return True

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"
