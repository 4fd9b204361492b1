"""An approximate-nearest-neighbour index over terminal embeddings (Faiss HNSW, cosine).

Why Faiss: a well-kept library (`faiss-cpu`, the `ann` extra) whose HNSW graph answers a
query in tens of microseconds at a million vectors, with an exact flat index beside it to
measure recall against. The vectors are unit length, so inner product is cosine similarity.

An index is only meaningful for the embedding refresh it was built from: two SVDs place the
same terminals at unrelated coordinates. So an index carries the version of its embeddings
(`Embeddings.content_hash` and the view version, refresh time), checked on every use
(`require`); and its file's sha256, checked on load. A wrong version is a `ConflictError`, a
damaged file an `IntegrityError`: never a wrong neighbour served silently.

>>> import numpy as np
>>> vectors = np.eye(4, dtype=np.float32)
>>> index = TerminalIndex.build(np.array([10, 11, 12, 13]), vectors, "v1")
>>> ids, sims = index.search(vectors[:1], 2)
>>> int(ids[0, 0]), float(sims[0, 0])
(10, 1.0)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mlsd.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)

INDEX_FILE, IDS_FILE, MANIFEST_FILE = "index.faiss", "ids.npy", "manifest.json"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise UnavailableError(
            "the ANN index needs faiss: pip install 'mlsd[ann]'", field="ann"
        ) from exc
    return faiss


@dataclass(frozen=True)
class IndexManifest:
    """What an index file is: the embeddings it was built for, its size, its checksums."""

    embedding: str
    dim: int
    count: int
    m: int
    ef_search: int
    index_sha256: str
    ids_sha256: str


class TerminalIndex:
    """HNSW over unit vectors (inner product), with the terminal id of each vector."""

    def __init__(self, index: Any, ids: npt.NDArray[np.int64], manifest: IndexManifest) -> None:
        self._index = index
        self.ids = ids
        self.manifest = manifest

    @classmethod
    def build(
        cls,
        ids: npt.NDArray[np.int64],
        vectors: npt.NDArray[np.float32],
        embedding: str,
        *,
        m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 64,
    ) -> TerminalIndex:
        """Index `vectors` (n, d) of terminals `ids`, built for embedding version `embedding`."""
        faiss = _faiss()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        if vectors.ndim != 2 or len(vectors) != len(ids) or len(ids) == 0:
            raise ValidationError("one vector per terminal id is needed", field="vectors")
        if not np.isfinite(vectors).all():
            raise ValidationError("embedding vectors must be finite", field="vectors")
        index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
        index.add(vectors)
        manifest = IndexManifest(
            embedding, int(vectors.shape[1]), len(ids), m, ef_search,
            _sha256(faiss.serialize_index(index)), _sha256(ids),
        )  # fmt: skip
        return cls(index, ids, manifest)

    def search(
        self, queries: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The `k` nearest terminals of each query (ids, cosine similarities), best first;
        id -1 and similarity NaN where the index holds fewer than `k`."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.manifest.dim:
            raise ValidationError(
                f"queries must be (n, {self.manifest.dim}), got {queries.shape}", field="queries"
            )
        sims, pos = self._index.search(queries, k)
        ids = np.where(pos >= 0, self.ids[np.maximum(pos, 0)], -1)
        return ids.astype(np.int64), np.where(pos >= 0, sims, np.nan).astype(np.float32)

    def require(self, embedding: str) -> None:
        """Raise ConflictError unless this index was built for embedding version `embedding`."""
        if embedding != self.manifest.embedding:
            raise ConflictError(
                f"the ANN index was built for embeddings {self.manifest.embedding}, but "
                f"{embedding} are served: rebuild the index for them",
                field="embedding",
            )

    def save(self, folder: Path) -> Path:
        """Write the index, its ids and its manifest into `folder`."""
        faiss = _faiss()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / INDEX_FILE).write_bytes(faiss.serialize_index(self._index).tobytes())
        np.save(folder / IDS_FILE, self.ids)
        (folder / MANIFEST_FILE).write_text(json.dumps(asdict(self.manifest), indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path, embedding: str | None = None) -> TerminalIndex:
        """Read an index saved by `save`, its checksums verified; with `embedding`, also
        require that version (ConflictError otherwise)."""
        faiss = _faiss()
        paths = [folder / name for name in (INDEX_FILE, IDS_FILE, MANIFEST_FILE)]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise NotFoundError(f"no ANN index in {folder} (missing {missing})", field="index")
        try:
            manifest = IndexManifest(**json.loads(paths[2].read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise IntegrityError(f"ANN index manifest {paths[2]} is damaged: {exc}") from exc
        blob = paths[0].read_bytes()
        if _sha256(np.frombuffer(blob, dtype=np.uint8)) != manifest.index_sha256:
            raise IntegrityError(
                f"ANN index file {paths[0]} does not match its manifest's sha256 (damaged or "
                "replaced): rebuild the index",
                field="index",
            )
        try:
            ids = np.load(paths[1], allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise IntegrityError(f"ANN index ids {paths[1]} are damaged: {exc}") from exc
        if _sha256(ids) != manifest.ids_sha256 or len(ids) != manifest.count:
            raise IntegrityError(
                f"ANN index ids {paths[1]} do not match the manifest: rebuild the index",
                field="index",
            )
        index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
        index.hnsw.efSearch = manifest.ef_search
        loaded = cls(index, ids.astype(np.int64), manifest)
        if embedding is not None:
            loaded.require(embedding)
        return loaded


def exact_search(
    ids: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    k: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Exact k nearest by inner product (Faiss's flat index): the reference for recall."""
    faiss = _faiss()
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
    sims, pos = flat.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return np.where(pos >= 0, ids[np.maximum(pos, 0)], -1).astype(np.int64), sims


def recall_at_k(approx: npt.NDArray[np.int64], exact: npt.NDArray[np.int64]) -> float:
    """Share of the exact k nearest that the approximate search found (recall@k)."""
    if approx.shape != exact.shape:
        raise ValidationError("approximate and exact results differ in shape", field="approx")
    found = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx, exact, strict=True))
    return found / exact.size if exact.size else 0.0


def _sha256(data: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()
