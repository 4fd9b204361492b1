"""The model registry: versions, aliases with history, lineage, environments, artifacts.

`Registry.open()` picks the backends from settings: metadata in SQLite (default)
or PostgreSQL, artifacts in a local folder (default) or S3. Registering writes
the artifacts first (content-addressed, atomic), then one metadata transaction,
so a version is either fully visible or not at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, cast

from mlsd.backends import Opening, open_backend
from mlsd.errors import (
    ConflictError,
    GateRejectedError,
    NotFoundError,
    ValidationError,
)
from mlsd.registry import environment as envmod
from mlsd.registry.artifacts import ArtifactStore, sha256, verified
from mlsd.registry.formats import check_stored_flavor
from mlsd.registry.gate import GateDecision, PromotionGate, Rescored
from mlsd.registry.metadata import MetadataStore
from mlsd.registry.models import (
    AliasMove,
    DecisionThreshold,
    Lineage,
    ModelSummary,
    ModelVersion,
    utcnow,
)
from mlsd.registry.names import (
    check_alias,
    check_filename,
    check_name,
    check_tag,
    check_version,
    parse_uri,
)
from mlsd.registry.profile import PROFILE_ARTIFACT, ReferenceProfile, load_profile
from mlsd.registry.rollouts import RolloutStore
from mlsd.registry.signature import Signature
from mlsd.settings import Settings, get_settings


def _metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"metric {key!r} is not a number", field="metrics") from exc
        if not math.isfinite(number):
            raise ValidationError(f"metric {key!r} is not finite ({number})", field="metrics")
        out[str(key)] = number
    return out


def _params(params: Mapping[str, Any]) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(json.dumps(dict(params), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"params must be plain JSON values: {exc}", field="params") from exc
    return result


class Registry:
    """Register, find, trust, promote and roll back model versions."""

    def __init__(self, metadata: MetadataStore, artifacts: ArtifactStore) -> None:
        self.metadata = metadata
        self.artifacts = artifacts

    @classmethod
    def open(cls, settings: Settings | None = None) -> Registry:
        """The registry configured by `settings` (default: the process settings)."""
        s = settings or get_settings()
        metadata = open_metadata(s)
        try:
            return cls(metadata, open_artifacts(s))
        except BaseException:
            metadata.close()
            raise

    @property
    def rollouts(self) -> RolloutStore:
        """Rollout state (rows, history, leases, change counter), in the metadata database."""
        return cast(RolloutStore, self.metadata)

    def close(self) -> None:
        """Release the metadata connection."""
        self.metadata.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- register and read ---------------------------------------------------

    def register(
        self,
        name: str,
        artifacts: Mapping[str, bytes],
        *,
        flavor: str,
        signature: Signature,
        lineage: Lineage,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, str] | None = None,
        description: str = "",
        threshold: DecisionThreshold | None = None,
    ) -> ModelVersion:
        """Store the artifacts, then record a new version (numbered atomically).

        `threshold` is the decision threshold serving applies (chosen at training); a
        version without one is served at 0.5 with a warning.
        """
        check_name(name)
        check_stored_flavor(flavor)
        if not artifacts:
            raise ValidationError("a version needs at least one artifact", field="artifacts")
        checked_tags = dict(check_tag(k, v) for k, v in (tags or {}).items())
        if lineage.parent_version is not None:
            self.get(name, check_version(lineage.parent_version))
        digests: dict[str, str] = {}
        for filename, data in artifacts.items():
            check_filename(filename)
            if not isinstance(data, bytes | bytearray):
                raise ValidationError(f"artifact {filename!r} must be bytes", field="artifacts")
            digests[filename] = sha256(bytes(data))
        draft = ModelVersion(
            name=name,
            version=0,
            created_at=utcnow(),
            flavor=flavor,
            artifacts=digests,
            signature=signature,
            lineage=lineage,
            params=_params(params),
            metrics=_metrics(metrics),
            threshold=threshold,
            tags=checked_tags,
            environment=envmod.current_environment(),
            description=description,
        )
        for filename, data in artifacts.items():
            self.artifacts.put(digests[filename], bytes(data))
        return self.metadata.add_version(draft)

    def get(self, name: str, version: int) -> ModelVersion:
        """One version by number."""
        return self.metadata.get_version(check_name(name), check_version(version))

    def resolve(self, uri: str) -> ModelVersion:
        """`models:/fraud@champion`, `models:/fraud/3`, `fraud@champion` or `fraud/3`."""
        ref = parse_uri(uri)
        if ref.version is None:
            return self.metadata.get_by_alias(ref.name, ref.alias or "")
        return self.metadata.get_version(ref.name, ref.version)

    def latest(self, name: str) -> ModelVersion:
        """The highest version of `name`."""
        version = self.metadata.latest_version(check_name(name))
        if version is None:
            raise NotFoundError(f"no registered model {name!r}", field="name")
        return self.metadata.get_version(name, version)

    def load_artifact(self, mv: ModelVersion, filename: str) -> bytes:
        """An artifact's bytes, verified against the recorded sha256 on every load."""
        digest = mv.artifacts.get(filename)
        if digest is None:
            raise NotFoundError(
                f"{mv.uri} has no artifact {filename!r} (has {sorted(mv.artifacts)})",
                field="artifacts",
            )
        return verified(digest, self.artifacts.get(digest), f"{filename} of {mv.uri}")

    def reference_profile(self, mv: ModelVersion) -> ReferenceProfile:
        """The version's reference profile (`MissingProfileError` for an old version)."""
        data = None
        if PROFILE_ARTIFACT in mv.artifacts:
            data = self.load_artifact(mv, PROFILE_ARTIFACT)
        return load_profile(data, mv.uri)

    def verify(self, mv: ModelVersion) -> None:
        """Load and check every artifact of `mv` (IntegrityError on the first bad one)."""
        for filename in mv.artifacts:
            self.load_artifact(mv, filename)

    def environment_diff(self, mv: ModelVersion) -> dict[str, Any]:
        """What differs between `mv`'s recorded environment and this process ({} if none)."""
        return envmod.diff(mv.environment)

    def search(
        self,
        name: str | None = None,
        tag_key: str | None = None,
        tag_value: str | None = None,
        limit: int = 1000,
    ) -> list[ModelVersion]:
        """Versions matching a name and/or a tag (key, or key and value)."""
        if name is not None:
            check_name(name)
        if limit < 1:
            raise ValidationError("limit must be >= 1", field="limit")
        return self.metadata.search(name, tag_key, tag_value, limit)

    def list_models(self) -> list[ModelSummary]:
        """Every registered model with its latest version and aliases."""
        return self.metadata.list_models()

    def set_tags(
        self, uri: str, tags: Mapping[str, str], remove: tuple[str, ...] = ()
    ) -> ModelVersion:
        """Add, overwrite or remove free tags on one version."""
        mv = self.resolve(uri)
        checked = dict(check_tag(k, v) for k, v in tags.items())
        return self.metadata.set_tags(mv.name, mv.version, checked, remove)

    def set_status(self, uri: str, status: str) -> ModelVersion:
        """Mark a version `ready` or `archived`."""
        mv = self.resolve(uri)
        return self.metadata.set_status(mv.name, mv.version, status)

    # -- aliases -------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, int]:
        """alias -> version for one model."""
        return self.metadata.aliases(check_name(name))

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str, actor: str
    ) -> AliasMove:
        """Point `name@alias` at `version`, recording the move."""
        return self.metadata.move_alias(
            check_name(name),
            check_alias(alias),
            check_version(version),
            kind="set",
            reason=reason,
            actor=actor,
            at=utcnow(),
        )

    def delete_alias(self, name: str, alias: str, *, reason: str, actor: str) -> AliasMove:
        """Remove `name@alias`, recording the move."""
        return self.metadata.move_alias(
            check_name(name),
            check_alias(alias),
            None,
            kind="delete",
            reason=reason,
            actor=actor,
            at=utcnow(),
        )

    def rollback(self, name: str, alias: str, *, reason: str, actor: str) -> AliasMove:
        """Move `name@alias` back to where it pointed before its latest move."""
        return self.metadata.rollback_alias(
            check_name(name), check_alias(alias), reason=reason, actor=actor, at=utcnow()
        )

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Every move of `name`'s aliases (or one alias), oldest first."""
        return self.metadata.alias_history(
            check_name(name), None if alias is None else check_alias(alias)
        )

    def promote(
        self,
        name: str,
        version: int,
        *,
        gate: PromotionGate,
        actor: str,
        reason: str,
        alias: str = "champion",
        force: bool = False,
        rescored: Rescored | None = None,
    ) -> GateDecision:
        """Move `alias` to `version` if it passes `gate` against the current holder.

        The decision is recorded either way. A refusal raises GateRejectedError
        unless `force`; the alias only moves if nobody moved it meanwhile. `rescored`:
        the holder's metrics on the candidate's test data (see `PromotionGate.evaluate`).
        """
        candidate = self.get(name, version)
        if candidate.status != "ready":
            raise ConflictError(f"{candidate.uri} is {candidate.status}", field="status")
        current = self.aliases(name).get(check_alias(alias))
        champion = None if current is None else self.get(name, current)
        checks = gate.evaluate(candidate, champion, rescored)
        passed = all(c.passed for c in checks)
        decision = GateDecision(
            name=name,
            version=version,
            alias=alias,
            champion_version=current,
            accepted=passed or force,
            forced=force and not passed,
            checks=checks,
            gate=gate,
            at=utcnow(),
            actor=actor,
            reason=reason,
        )
        if not decision.accepted:
            self.metadata.record_decision(decision)
            details = "; ".join(c.detail for c in decision.failures)
            raise GateRejectedError(
                f"{candidate.uri} refused as {alias}: {details}", field="metrics"
            )
        self.metadata.move_alias(
            name,
            alias,
            version,
            kind="promote",
            reason=reason,
            actor=actor,
            at=decision.at,
            check_from=True,
            expected_from=current,
            decision=decision,
        )
        return decision

    def decisions(self, name: str) -> list[GateDecision]:
        """Every recorded gate decision on `name`."""
        return self.metadata.decisions(check_name(name))


def open_metadata(settings: Settings) -> MetadataStore:
    """The metadata backend `settings.registry_db` names ('' = SQLite in home)."""
    return cast(MetadataStore, open_backend("registry_db", settings))


def open_artifacts(settings: Settings) -> ArtifactStore:
    """The artifact backend `settings.artifacts` names ('' = a folder in home)."""
    return cast(ArtifactStore, open_backend("artifacts", settings))


def sqlite_metadata(o: Opening) -> MetadataStore:
    """Metadata in SQLite: `home/registry/registry.db`, or `sqlite:///relative` / `:////abs`."""
    from mlsd.registry.sqlite import SqliteMetadataStore

    if o.url.embedded:
        return SqliteMetadataStore(o.settings.path("registry", "registry.db"))
    return SqliteMetadataStore(o.url.path[1:])


def postgres_metadata(o: Opening) -> MetadataStore:
    """Metadata on PostgreSQL, in the URL's `?schema=` (created if missing)."""
    from mlsd.registry.postgres import PostgresMetadataStore

    return PostgresMetadataStore(o.url.dsn, schema=o.url.schema)


def local_artifacts(o: Opening) -> ArtifactStore:
    """Artifacts in a folder: `home/registry/artifacts`, or `file:///path`."""
    from mlsd.registry.local import LocalArtifactStore

    if o.url.embedded:
        return LocalArtifactStore(o.settings.path("registry", "artifacts"))
    return LocalArtifactStore(o.url.path)


def s3_artifacts(o: Opening) -> ArtifactStore:
    """Artifacts on S3 (`MLSD_S3_ENDPOINT_URL` for MinIO and the like)."""
    from mlsd.registry.s3 import S3ArtifactStore

    return S3ArtifactStore(o.url.dsn, endpoint_url=o.settings.s3_endpoint_url or None)
