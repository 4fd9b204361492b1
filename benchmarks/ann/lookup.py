"""ANN lookup over terminal embeddings: p50/p99 of one query and recall@10 against exact
search, at 10k and 1M vectors (Faiss HNSW, `mlsd.features.ann.TerminalIndex`).

- `10k simulated`: the terminal embeddings of a handbook world (5,000 cards, 10,000
  terminals, 60 days), the SVD the embedding view computes (16 dimensions, 30 days);
- `10k` and `1M synthetic`: unit vectors around 1 cluster centre per 1,000 vectors (16
  dimensions), since no simulated world of 1M terminals fits this machine's budget.

One query at a time (as a request does), one thread; recall@10 over 1,000 queries, each
query's own vector excluded from neither side. Usage:
`python -m benchmarks.ann.lookup [--sizes 10000 1000000] [--queries 1000]`.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from mlsd.features.ann import TerminalIndex, exact_search, recall_at_k

DIM = 16
EF_SEARCH = (16, 64, 128)


def synthetic(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around n / 1000 centres: the shape of geographic embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 1000), DIM))
    vectors = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, DIM))
    vectors = vectors.astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def simulated() -> tuple[np.ndarray, np.ndarray]:
    """Terminal ids and embeddings of a simulated handbook world's last refresh."""
    from mlsd.data.config import SimulatorConfig
    from mlsd.data.simulator import simulate
    from mlsd.features.embeddings import DAY_US, compute_embeddings

    tx = simulate(SimulatorConfig(n_customers=5000, n_terminals=10000, n_days=60)).transactions
    times = tx["TX_DATETIME"].dt.as_unit("us").astype("int64").to_numpy()
    refresh = (int(times.max()) // DAY_US + 1) * DAY_US
    emb = compute_embeddings(
        tx["CUSTOMER_ID"].to_numpy(np.int64), tx["TERMINAL_ID"].to_numpy(np.int64), times,
        refresh, 30, DIM,
    )  # fmt: skip
    return emb.terminals, emb.terminal_vectors


def measure(
    name: str, ids: np.ndarray, vectors: np.ndarray, n_queries: int
) -> list[dict[str, Any]]:
    """Build once; per efSearch: one-query latency percentiles and recall@10."""
    import faiss

    faiss.omp_set_num_threads(2)
    began = time.perf_counter()
    index = TerminalIndex.build(ids, vectors, "bench")
    build_s = time.perf_counter() - began
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(1)
    queries = vectors[rng.choice(len(vectors), size=min(n_queries, len(vectors)), replace=False)]
    exact, _ = exact_search(ids, vectors, queries, 10)
    points = []
    for ef in EF_SEARCH:
        index._index.hnsw.efSearch = ef
        approx, _ = index.search(queries, 10)
        took = []
        for q in queries:
            started = time.perf_counter()
            index.search(q[None, :], 10)
            took.append(time.perf_counter() - started)
        us = np.array(took) * 1e6
        point = {
            "vectors": name, "n": len(vectors), "dim": int(vectors.shape[1]), "ef_search": ef,
            "build_s": round(build_s, 2), "p50_us": round(float(np.percentile(us, 50)), 1),
            "p99_us": round(float(np.percentile(us, 99)), 1),
            "recall_at_10": round(recall_at_k(approx, exact), 4),
        }  # fmt: skip
        points.append(point)
        print(json.dumps(point), flush=True)
    return points


def exact_latency(vectors: np.ndarray, n_queries: int = 200) -> dict[str, float]:
    """One exact (flat) query's p50/p99 µs, one thread: what the index saves."""
    import faiss

    faiss.omp_set_num_threads(1)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    took = []
    for q in vectors[:n_queries]:
        started = time.perf_counter()
        flat.search(q[None, :], 10)
        took.append(time.perf_counter() - started)
    us = np.array(took) * 1e6
    return {"n": len(vectors), "exact_p50_us": round(float(np.percentile(us, 50)), 1),
            "exact_p99_us": round(float(np.percentile(us, 99)), 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--no-simulated", action="store_true")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    if not args.no_simulated:
        ids, vectors = simulated()
        results += measure("10k simulated", ids, vectors, args.queries)
        print(json.dumps(exact_latency(vectors)), flush=True)
    for n in args.sizes:
        vectors = synthetic(n)
        results += measure(f"{n:,} synthetic", np.arange(n, dtype=np.int64), vectors, args.queries)
        print(json.dumps(exact_latency(vectors)), flush=True)
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
