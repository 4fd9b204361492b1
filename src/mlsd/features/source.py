"""Where an offline table came from: the dataset it was built from, as one identity string.

`FeatureStore.build` writes `source.json` beside a view version's Parquet parts. The
identity names the dataset folder and its content hash (the manifest's sha256, or a
fingerprint of the transaction files when there is no manifest), so a rebuild of the
same data keeps its identity and a different dataset, or a dataset overwritten in place,
gets a new one. Materialization stores the identity next to its watermark, so a
watermark is never reused for another dataset's rows.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from mlsd.data import schema
from mlsd.errors import IntegrityError

SOURCE_FILE = "source.json"


def dataset_fingerprint(dataset_dir: Path) -> str:
    """The content hash of a dataset: its manifest's sha256, else its files' names and sizes."""
    manifest = Path(dataset_dir) / schema.MANIFEST_FILE
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise IntegrityError(f"{manifest} is not valid JSON: {exc}") from None
        value = data.get("content_sha256") if isinstance(data, dict) else None
        if isinstance(value, str):
            return value
        files = data.get("files", {}) if isinstance(data, dict) else {}
        return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    folder = Path(dataset_dir) / schema.TRANSACTIONS_DIR
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.parquet")):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def dataset_identity(dataset_dir: Path) -> str:
    """`<absolute dataset folder>#sha256:<content hash>`: what a table was built from."""
    return f"{Path(dataset_dir).resolve()}#sha256:{dataset_fingerprint(dataset_dir)}"


def write_source(folder: Path, identity: str) -> None:
    """Record in a view version's folder the dataset its table was built from."""
    body = {"source": identity, "built_at": datetime.now(UTC).isoformat()}
    tmp = folder / f".{SOURCE_FILE}.tmp"
    tmp.write_text(json.dumps(body, indent=2), encoding="utf-8")
    tmp.replace(folder / SOURCE_FILE)


def read_source(folder: Path) -> str:
    """The identity of the table in `folder`: its recorded dataset, else its parts' names.

    Tables written before sources were recorded (or by hand) get a fingerprint of their
    Parquet part names and sizes (pushed parts excluded: they add to a table, not replace it).
    """
    path = folder / SOURCE_FILE
    if path.is_file():
        try:
            value = json.loads(path.read_text(encoding="utf-8")).get("source")
        except (ValueError, AttributeError) as exc:
            raise IntegrityError(f"{path} is not a valid source record: {exc}") from None
        if isinstance(value, str) and value:
            return value
    digest = hashlib.sha256()
    for part in sorted(folder.glob("part-*.parquet")):
        if "push" not in part.name:
            digest.update(f"{part.name}:{part.stat().st_size}\n".encode())
    return f"{folder.resolve()}#parts:{digest.hexdigest()}"


def short(identity: str | None) -> str:
    """A readable form of an identity: the folder and the first 12 hex digits of its hash."""
    if identity is None:
        return "an unrecorded source (materialized before sources were recorded)"
    where, _, digest = identity.rpartition("#")
    kind, _, value = digest.partition(":")
    return f"{where} ({kind} {value[:12]})" if where else identity
