"""Benchmark the point-in-time join: 1 M entity rows against 3 feature views of 10 M rows.

    .venv/bin/python -m benchmarks.features.pit_join [--runs 3] [--scale 1.0]

Synthetic offline tables (4 M + 3 M + 3 M rows, TTL 30 days) are written once; each
`get_training_set` runs in a fresh process, so its peak RSS is its own: target <= 10 s
and <= 3 GB. The baseline, in the same run at a tenth of the size, is pandas
`merge_asof` per view (by key, backward, TTL as tolerance), next to the feature store at
that size; both results are checked equal. CPU seconds are printed too: the machine is
shared, and wall time suffers from it.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from benchmarks.features.common import median, run_child
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from mlsd.features.aggregations import Aggregation
from mlsd.features.definitions import Entity, FeatureView
from mlsd.features.handbook import CUSTOMER, TERMINAL

TARGET_S, TARGET_MB = 10.0, 3072.0
DAY_US = 86_400_000_000
START_US = 1_522_540_800_000_000  # 2018-04-01
SPAN_US = 180 * DAY_US
TTL = timedelta(days=30)


def _view(name: str, entity: Entity, features: tuple[str, ...]) -> FeatureView:
    """A declared window view (the synthetic tables are written directly: only the names,
    the entity and the TTL matter to the join)."""
    counts = tuple(Aggregation(f, "count", None, timedelta(days=1)) for f in features)
    return FeatureView(name, entity, "window", features, TTL, aggregations=counts)


VIEWS = (
    (_view("bench_a", CUSTOMER, ("A1", "A2", "A3", "A4")), 0.4, 200_000),
    (_view("bench_b", TERMINAL, ("B1", "B2", "B3", "B4")), 0.3, 50_000),
    (_view("bench_c", CUSTOMER, ("C1", "C2")), 0.3, 200_000),
)
FEATURES = [f for view, _, _ in VIEWS for f in view.features]

JOIN = """
import time
from pathlib import Path
import pandas as pd
from mlsd.features.store import FeatureStore
from mlsd.settings import Settings
store = FeatureStore.open(Settings(home=Path({home!r})))
import resource
ents = pd.read_parquet({entities!r})
def cpu():
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime
t, c = time.perf_counter(), cpu()
out = store.get_training_set(ents, {features!r})
seconds, cpu_s = time.perf_counter() - t, cpu() - c
if {check!r}:
    out[{features!r}].to_parquet({check!r})
RESULT = {{"seconds": seconds, "cpu": cpu_s, "rows": len(out),
          "missing": float(out["A1"].isna().mean())}}
"""

PANDAS = """
import time
import pandas as pd
ents = pd.read_parquet({entities!r})
tables = [(pd.read_parquet(p), key, feats) for p, key, feats in {tables!r}]
t = time.perf_counter()
out = ents.reset_index(names="__row").sort_values("TX_DATETIME")
for table, key, feats in tables:
    table = table.sort_values(["event_timestamp", "created_timestamp"])
    table = table.drop_duplicates([key, "event_timestamp"], keep="last")
    out = pd.merge_asof(out, table[[key, "event_timestamp", *feats]], left_on="TX_DATETIME",
                        right_on="event_timestamp", by=key, direction="backward",
                        tolerance=pd.Timedelta(days=30)).drop(columns="event_timestamp")
out = out.sort_values("__row")
seconds = time.perf_counter() - t
out[{features!r}].reset_index(drop=True).to_parquet({check!r})
RESULT = {{"seconds": seconds, "rows": len(out)}}
"""


def _times(rng: np.random.Generator, n: int) -> pd.Series:
    us = START_US + rng.integers(0, SPAN_US, size=n)
    return pd.Series(pd.to_datetime(us, unit="us", utc=True)).dt.as_unit("us")


def write_tables(home: Path, scale: float, seed: int = 0) -> list[tuple[str, str, list[str]]]:
    """Apply the bench views in `home` and write their offline tables; (path, key, feats)."""
    from mlsd.features.store import FeatureStore
    from mlsd.settings import Settings

    store = FeatureStore.open(Settings(home=home))
    store.apply([view for view, _, _ in VIEWS])
    rng = np.random.default_rng(seed)
    out = []
    for view, share, n_keys in VIEWS:
        n = int(10_000_000 * scale * share)
        key = view.entity.join_key if view.entity else ""
        table = pd.DataFrame({key: rng.integers(0, n_keys, size=n, dtype=np.int64)})
        table["event_timestamp"] = _times(rng, n)
        table["created_timestamp"] = pd.Timestamp("2019-01-01", tz="UTC").as_unit("us")
        for feat in view.features:
            table[feat] = rng.random(n)
        table = table.sort_values("event_timestamp", kind="stable")
        table = table.drop_duplicates([key, "event_timestamp"], keep="last")
        folder = store.offline.folder(view.name, view.version)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "part-1.parquet"
        table.to_parquet(path, index=False, row_group_size=122_880)
        out.append((str(path), key, list(view.features)))
    store.close()
    return out


def write_entities(path: Path, n: int, seed: int = 1) -> Path:
    """`n` entity rows: a customer, a terminal and a time each."""
    rng = np.random.default_rng(seed)
    ents = pd.DataFrame(
        {
            "CUSTOMER_ID": rng.integers(0, 200_000, size=n, dtype=np.int64),
            "TERMINAL_ID": rng.integers(0, 50_000, size=n, dtype=np.int64),
        }
    )
    ents["TX_DATETIME"] = _times(rng, n)
    ents.to_parquet(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 1 M x 10 M")
    args = parser.parse_args()
    console = Console(width=120)
    with tempfile.TemporaryDirectory() as tmp_name, Progress(console=console) as bar:
        tmp = Path(tmp_name)
        task = bar.add_task("writing 10 M feature rows", total=None)
        write_tables(tmp / "big", args.scale)
        big_ents = write_entities(tmp / "ents.parquet", int(1_000_000 * args.scale))
        small = write_tables(tmp / "small", args.scale / 10)
        small_ents = write_entities(tmp / "ents_small.parquet", int(100_000 * args.scale))
        bar.update(task, total=3 * args.runs, completed=0, description="joins")
        big, store_small, pandas_small = [], [], []
        for _ in range(args.runs):
            code = JOIN.format(home=str(tmp / "big"), entities=str(big_ents), features=FEATURES,
                               check="")  # fmt: skip
            big.append(run_child(code))
            bar.advance(task)
            code = JOIN.format(home=str(tmp / "small"), entities=str(small_ents),
                               features=FEATURES, check=str(tmp / "fs.parquet"))  # fmt: skip
            store_small.append(run_child(code))
            bar.advance(task)
            code = PANDAS.format(entities=str(small_ents), tables=small, features=FEATURES,
                                 check=str(tmp / "pd.parquet"))  # fmt: skip
            pandas_small.append(run_child(code))
            bar.advance(task)
        same = pd.read_parquet(tmp / "fs.parquet").equals(pd.read_parquet(tmp / "pd.parquet"))
    table = Table(title=f"point-in-time join, median of {args.runs} runs")
    for col in ("what", "entity rows", "feature rows", "seconds", "peak MB", "target"):
        table.add_column(col)
    rows = int(10_000_000 * args.scale)
    bs, bm = median([r["seconds"] for r in big]), median([r["peak_mb"] for r in big])
    table.add_row("feature store (DuckDB ASOF)", f"{big[0]['rows']:,}", f"{rows:,}", f"{bs:.2f}",
                  f"{bm:.0f}", f"<= {TARGET_S} s, <= {TARGET_MB:.0f} MB")  # fmt: skip
    ss, sm = (
        median([r["seconds"] for r in store_small]),
        median([r["peak_mb"] for r in store_small]),
    )
    ps, pm = (
        median([r["seconds"] for r in pandas_small]),
        median([r["peak_mb"] for r in pandas_small]),
    )
    n_small = f"{store_small[0]['rows']:,}"
    table.add_row("feature store, 1/10", n_small, f"{rows // 10:,}", f"{ss:.2f}", f"{sm:.0f}", "")
    table.add_row(
        "pandas merge_asof, 1/10", n_small, f"{rows // 10:,}", f"{ps:.2f}", f"{pm:.0f}", ""
    )
    console.print(table)
    console.print(f"feature store CPU seconds (2 cores): {median([r['cpu'] for r in big]):.2f}")
    console.print(f"missing after TTL: {big[0]['missing']:.1%} of rows (kept, with NaN)")
    console.print(f"pandas / feature store at 1/10: {ps / ss:.1f}x; results equal: {same}")
    ok = bs <= TARGET_S and bm <= TARGET_MB
    console.print("[green]targets met[/]" if ok else "[red]targets missed[/]")


if __name__ == "__main__":
    main()
