"""Benchmark materialization: peak memory stays flat as the materialized window grows.

    .venv/bin/python -m benchmarks.features.materialize [--runs 3] [--dataset DIR]

The handbook dataset is cut to its first 30, 90 and 183 days; for each cut the offline
tables are built, then `materialize` runs in a fresh process (peak RSS its own) into an
empty SQLite online store, 7-day chunks. The baseline, in the same run, is one chunk
covering the whole window (what a non-chunked copy would hold in memory).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.features.common import handbook_dataset, median, run_child
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

MATERIALIZE = """
import time
from pathlib import Path
from mlsd.features.store import FeatureStore
from mlsd.settings import Settings
store = FeatureStore.open(Settings(home=Path({home!r})))
store.online.clear()
t = time.perf_counter()
report = store.materialize(chunk_days={chunk!r})
RESULT = {{"seconds": time.perf_counter() - t, "rows": sum(report.rows_written.values())}}
"""


def cut(dataset: Path, out: Path, days: int) -> Path:
    """The first `days` days of a dataset."""
    import duckdb

    (out / "transactions").mkdir(parents=True, exist_ok=True)
    duckdb.execute(
        f"COPY (SELECT * FROM read_parquet('{dataset}/transactions/*.parquet') "
        f"WHERE TX_TIME_DAYS < {days}) TO '{out}/transactions/all.parquet' (FORMAT parquet)"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dataset", type=Path, default=None)
    args = parser.parse_args()
    from mlsd.features.store import FeatureStore
    from mlsd.settings import Settings

    console = Console(width=120)
    results = []
    with tempfile.TemporaryDirectory() as tmp_name, Progress(console=console) as bar:
        tmp = Path(tmp_name)
        task = bar.add_task("simulating the handbook dataset", total=None)
        dataset = args.dataset or handbook_dataset(tmp / "handbook")
        cuts = (30, 90, 183)
        bar.update(task, total=len(cuts) * 2 * args.runs, completed=0)
        for days in cuts:
            bar.update(task, description=f"{days} days: build")
            home = tmp / f"home{days}"
            store = FeatureStore.open(Settings(home=home))
            store.apply()
            store.build(cut(dataset, tmp / f"cut{days}", days))
            store.close()
            for chunk in (7.0, float(days + 1)):
                bar.update(task, description=f"{days} days: materialize, {chunk:g}-day chunks")
                runs = []
                for _ in range(args.runs):
                    runs.append(run_child(MATERIALIZE.format(home=str(home), chunk=chunk)))
                    bar.advance(task)
                results.append((days, chunk, runs))
    table = Table(title=f"materialization into SQLite, median of {args.runs} runs")
    for col in ("days", "chunk", "rows written", "seconds", "peak MB"):
        table.add_column(col)
    for days, chunk, runs in results:
        label = "7 days" if chunk == 7.0 else "one chunk (baseline)"
        secs, peak = median([r["seconds"] for r in runs]), median([r["peak_mb"] for r in runs])
        table.add_row(str(days), label, f"{runs[0]['rows']:,}", f"{secs:.2f}", f"{peak:.0f}")
    console.print(table)


if __name__ == "__main__":
    main()
