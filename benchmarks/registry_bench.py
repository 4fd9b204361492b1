"""Registry benchmark: register, resolve an alias, load, move an alias, tag search at scale.

    .venv/bin/python benchmarks/registry_bench.py [--versions 10000] [--db URL]

With `--db 'postgresql://...?schema=NAME'` the schema is created and dropped at the end.

Every operation is timed many times and reported as p50 / p95, next to a floor
measured in the same run (the raw cost the registry builds on), so the ratio
shows the registry's own overhead:

- register (environment capture included; each timed registration writes new
  artifact bytes: LightGBM text + ONNX with a unique trailer, so the
  content-addressed write and its fsync always happen) vs writing the same
  bytes to a file with fsync;
- resolve `models:/bench@champion` vs one raw primary-key SELECT;
- load = resolve + read + sha256 verify + `lightgbm.Booster(model_str=...)`
  vs building the Booster from a string already in memory (ONNX session too);
- move an alias (recorded in the history) vs one raw UPDATE in a transaction;
- tag search with N versions in the registry (1, 10 and 100 matches) vs a
  Python scan of every tag row.

Targets from the issue: register <= 50 ms, resolve <= 0.5 ms, load <= 10 ms,
tag search at 10,000 versions <= 5 ms. Default backends: SQLite + local folder.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from mlsd.registry.formats import (
    LIGHTGBM_ARTIFACT,
    ONNX_ARTIFACT,
    ONNX_INPUT,
    ONNX_OPSET,
    onnx_session,
)

console = Console()
N_FEATURES = 15


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Milliseconds per call, one sample per call."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def make_model() -> tuple[bytes, bytes]:
    """A real LightGBM model (100 trees, 31 leaves, 15 features) as text and ONNX."""
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    rng = np.random.default_rng(0)
    x = rng.random((20_000, N_FEATURES), dtype=np.float32)
    y = (x[:, 0] + x[:, 1] * 0.5 + rng.random(20_000) * 0.5 > 1.2).astype(np.int32)
    model = lgb.LGBMClassifier(n_estimators=100, num_leaves=31, verbose=-1, n_jobs=1)
    model.fit(x, y)
    onnx_model = convert_lightgbm(
        model,
        initial_types=[(ONNX_INPUT, FloatTensorType([None, N_FEATURES]))],
        zipmap=False,
        target_opset=ONNX_OPSET,
    )
    return model.booster_.model_to_string().encode(), onnx_model.SerializeToString()


class RawDb:
    """A plain connection to the registry's database, for the floors."""

    def __init__(self, url: str, sqlite_path: Path) -> None:
        self.postgres = url.startswith("postgres")
        if self.postgres:
            import psycopg

            from mlsd.registry.postgres import split_schema

            dsn, schema = split_schema(url)
            self.conn: Any = psycopg.connect(dsn, autocommit=True)
            if schema:
                self.conn.execute(f'SET search_path TO "{schema}"')
        else:
            self.conn = sqlite3.connect(sqlite_path, isolation_level=None)
            self.conn.execute("PRAGMA synchronous=FULL")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        sql = sql.replace("?", "%s") if self.postgres else sql
        return list(self.conn.execute(sql, params).fetchall())

    def update(self, sql: str, params: tuple[Any, ...]) -> None:
        sql = sql.replace("?", "%s") if self.postgres else sql
        self.conn.execute(sql, params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=10_000, help="registry size for search")
    parser.add_argument("--db", default="", help="registry_db URL (default: SQLite in a temp dir)")
    parser.add_argument("--repeats", type=int, default=300, help="samples per operation")
    args = parser.parse_args()

    import lightgbm as lgb

    from mlsd.registry import Lineage, Registry, Signature
    from mlsd.registry import environment as envmod
    from mlsd.registry.loaders import load_lightgbm, load_onnx
    from mlsd.registry.registry import open_metadata
    from mlsd.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="mlsd-registry-bench-"))
    settings = Settings(home=tmp, registry_db=args.db)
    registry = Registry.open(settings)
    console.print(f"registry in {tmp} ({args.db or 'SQLite'} + local artifacts)")
    with console.status("training a LightGBM model (100 trees) and converting it to ONNX"):
        text, onnx_bytes = make_model()
    console.print(f"model: {len(text) / 1e3:.0f} kB text, {len(onnx_bytes) / 1e3:.0f} kB ONNX")
    signature = Signature(
        feature_names=[f"f{i}" for i in range(N_FEATURES)], dtypes=["float32"] * N_FEATURES
    )
    lineage = Lineage(training_set_hash="0" * 64, feature_views={"tx": "1"}, code_commit="bench")
    metrics = {"auc_roc": 0.9, "average_precision": 0.6, "card_precision_at_100": 0.3}
    counter = iter(range(10**9))

    def register(
        name: str = "bench", tags: dict[str, str] | None = None, unique: bool = True
    ) -> int:
        i = next(counter)
        suffix = f"\n# bench {i}\n".encode() if unique else b""
        mv = registry.register(
            name,
            {LIGHTGBM_ARTIFACT: text + suffix, ONNX_ARTIFACT: onnx_bytes + suffix},
            flavor="lightgbm",
            signature=signature,
            lineage=lineage,
            params={"n_estimators": 100, "num_leaves": 31},
            metrics=metrics,
            tags=tags,
        )
        return mv.version

    results: dict[str, tuple[list[float], list[float]]] = {}
    cold_start = time.perf_counter()
    envmod.current_environment.cache_clear()
    register(unique=False)  # version 1: the clean model that the load benchmark reads
    cold_ms = (time.perf_counter() - cold_start) * 1e3
    n_pkgs = len(envmod.current_environment().packages)

    def floor_write() -> None:
        path = tmp / "floor.bin"
        with open(path, "wb") as handle:
            handle.write(text + onnx_bytes)
            handle.flush()
            os.fsync(handle.fileno())

    reps = args.repeats
    with Progress(console=console) as progress:
        task = progress.add_task("register", total=None)
        results["register"] = (timed(register, reps // 2), timed(floor_write, reps // 2))
        registry.set_alias("bench", "champion", 1, reason="bench", actor="bench")

        progress.update(task, description="resolve alias")
        raw = RawDb(args.db, tmp / "registry" / "registry.db")

        def floor_select() -> None:
            raw.query(
                "SELECT body FROM model_versions WHERE name = ? AND version = ?", ("bench", 1)
            )

        results["resolve alias"] = (
            timed(lambda: registry.resolve("models:/bench@champion"), reps * 5),
            timed(floor_select, reps * 5),
        )

        progress.update(task, description="load")
        results["load (LightGBM Booster)"] = (
            timed(lambda: load_lightgbm(registry, "models:/bench@champion"), reps),
            timed(lambda: lgb.Booster(model_str=text.decode()), reps),
        )
        results["load (ONNX session)"] = (
            timed(lambda: load_onnx(registry, "models:/bench@champion"), reps),
            timed(lambda: onnx_session(onnx_bytes), reps),
        )

        progress.update(task, description="move alias")
        versions = [register() for _ in range(4)]
        cycle = iter(range(10**9))

        def move() -> None:
            registry.set_alias(
                "bench", "champion", versions[next(cycle) % 4], reason="b", actor="b"
            )

        def floor_update() -> None:
            raw.update(
                "UPDATE aliases SET version = ? WHERE name = 'bench'", (versions[next(cycle) % 4],)
            )

        results["move alias"] = (timed(move, reps), timed(floor_update, reps))
        progress.remove_task(task)

        have = registry.metadata.latest_version("bench") or 0
        fill = progress.add_task(f"filling to {args.versions} versions", total=args.versions)
        progress.update(fill, completed=have)
        for n in range(args.versions - have):
            tags = {"run": f"r{n}", "batch": f"b{n // 100}", "team": "risk"}
            if n % 1000 == 0:
                tags["release"] = "v3.2-prod"
            register(f"model{n % 10}", tags, unique=False)
            progress.advance(fill)

    total = sum(m.latest_version for m in registry.list_models())
    console.print(f"registry holds {total} versions in {len(registry.list_models())} models")
    tag_rows = raw.query("SELECT name, version, key, value FROM version_tags")
    cold = Registry(open_metadata(settings), registry.artifacts)
    cold.metadata.cache_size = 0  # type: ignore[attr-defined]

    def scan(key: str, value: str) -> list[tuple[str, int]]:
        return [(n, v) for n, v, k, val in tag_rows if k == key and val == value]

    fill_count = args.versions - have
    for label, key, value in [
        ("1 match", "run", f"r{fill_count // 2}"),
        ("10 matches", "release", "v3.2-prod"),
        ("100 matches", "batch", f"b{fill_count // 200}"),
    ]:
        found = len(registry.search(tag_key=key, tag_value=value))
        floor = timed(lambda k=key, v=value: scan(k, v), max(10, reps // 10))
        results[f"tag search, {label} (found {found})"] = (
            timed(lambda k=key, v=value: registry.search(tag_key=k, tag_value=v), reps),
            floor,
        )
        results[f"tag search, {label}, cold (no cache)"] = (
            timed(lambda k=key, v=value: cold.search(tag_key=k, tag_value=v), reps // 3),
            floor,
        )

    table = Table(title=f"registry benchmark ({args.versions} versions for search)")
    for column in ("operation", "p50 ms", "p95 ms", "floor p50 ms", "p50 / floor"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    for label, (ours, floor) in results.items():
        p50, floor50 = statistics.median(ours), statistics.median(floor)
        ratio = "-" if floor50 <= 0.0005 else f"{p50 / floor50:.2g}x"
        if floor50 > 0.0005 and p50 / floor50 >= 10:
            ratio = f"{p50 / floor50:.0f}x"
        table.add_row(label, f"{p50:.3f}", f"{_pct(ours, 0.95):.3f}", f"{floor50:.3f}", ratio)
    console.print(table)
    console.print(
        f"first register in a fresh process (environment capture of {n_pkgs} distributions "
        f"included): {cold_ms:.1f} ms; later registers reuse the per-process capture"
    )
    console.print(
        "floors: register = write+fsync the same bytes; resolve = one raw SELECT; "
        "load = build from bytes in memory; move = one raw UPDATE; search = Python scan"
    )
    registry.close()
    if raw.postgres and "schema=" in args.db:
        from mlsd.registry.postgres import split_schema

        raw.conn.execute(f'DROP SCHEMA IF EXISTS "{split_schema(args.db)[1]}" CASCADE')


if __name__ == "__main__":
    main()
