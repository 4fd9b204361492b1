"""The compression report's table as a benchmark: medians of repeated runs, ratios in-run.

    python -m benchmarks.compression [--runs 3] [--customers 1500] [--days 100]

One world (a LightGBM champion trained by the handbook protocol); the variants are made
once, then measured `--runs` times (interleaved: machine noise hits all alike); each figure
is the median over the runs, and every ratio is against the source measured in the same
run and runtime, then the median of those ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from mlsd.compression.measure import Measured
from mlsd.lab.experiment import Row

Figure = Callable[[Measured], float]


def main() -> None:
    """Run and print the table."""
    from mlsd.compression.blocks import load_blocks
    from mlsd.compression.measure import Budget, measure, warm_libraries
    from mlsd.compression.methods import Options, check_methods, make_variants
    from mlsd.compression.run import source_variant
    from mlsd.compression.world import build_world
    from mlsd.features.store import FeatureStore
    from mlsd.lab.report import markdown_table
    from mlsd.registry import Registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--days", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = build_world(Path(tmp), customers=args.customers, days=args.days)
        store = FeatureStore.open(settings)
        with Registry.open(settings) as registry:
            mv = registry.resolve("models:/fraud@champion")
            source = source_variant(registry, mv)
            blocks = load_blocks(mv, store)
        store.close()
        methods, _ = check_methods(None, mv.flavor)
        variants = [source, *make_variants(blocks, mv.flavor, source.artifacts, methods, Options())]
        X = blocks.X("test")
        warm_libraries(source, X.shape[1])
        runs = []
        for run in range(args.runs):
            rows = [
                m for v in variants for m in measure(v, X, blocks.test, budget=Budget(), seed=run)
            ]
            runs.append({(m.variant, m.runtime): m for m in rows})
            print(f"run {run + 1}/{args.runs} done", flush=True)
    table: list[Row] = []
    for key, first in runs[0].items():
        src = (source.name, key[1])

        def med(get: Figure, k: tuple[str, str] = key) -> float:
            return statistics.median(get(r[k]) for r in runs)

        def ratio(get: Figure, k: tuple[str, str] = key, s: tuple[str, str] = src) -> float:
            return statistics.median(get(r[k]) / get(r[s]) for r in runs)

        table.append(
            {
                "variant": key[0],
                "runtime": key[1],
                "AP": first.average_precision,
                "AUC": first.auc_roc,
                "CP@100": first.card_precision_at_100,
                "p50 µs": med(lambda m: m.p50_us),
                "p99 µs": med(lambda m: m.p99_us),
                "rows/s @64": med(lambda m: m.rows_per_s[64]),
                "rows/s @256": med(lambda m: m.rows_per_s[256]),
                "rows/s @1024": med(lambda m: m.rows_per_s[1024]),
                "× rows/s @1024": ratio(lambda m: m.rows_per_s[1024]),
                "× p50": ratio(lambda m: m.p50_us),
                "size KB": first.size_bytes / 1024,
                "× size": first.size_bytes / runs[0][src].size_bytes,
                "RSS MB": med(lambda m: m.rss_mb),
                "$ / M pred.": med(lambda m: m.usd_per_million),
            }
        )
    print(markdown_table(table))


if __name__ == "__main__":
    main()
