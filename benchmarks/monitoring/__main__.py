"""Benchmark drift: 1 M rows x 30 features against a stored reference profile.

Run: `python -m benchmarks.monitoring [--rows 1000000] [--runs 3]`

mlsd reads only the stored profile (bins and counts, computed once at registration) and
makes one vectorised pass over the window. The baseline is what a script with numpy and
scipy does without a stored profile: recompute the reference's quantile bins from the
training rows, histogram both, PSI per feature, the exact two-sample KS
(`scipy.stats.ks_2samp`) on numeric features and a chi-squared contingency test on the
categorical ones, measured in the same run on the same data. Both must find the
planted shifts (three features moved, 27 not) and nothing else. BLAS is pinned to one
thread (the machine has 2 cores, shared).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import stats
from threadpoolctl import threadpool_limits

from mlsd.monitoring.drift import FeatureDrift, drift
from mlsd.registry.profile import ReferenceProfile, build_profile, load_profile, profile_bytes

D = 30
PLANTED = {"f00": "amount x 1.5", "f07": "flag rate 0.2 -> 0.35", "f12": "mean + 0.5 sd"}
TARGET_S = 1.5


def columns(n: int, rng: np.random.Generator) -> np.ndarray:
    """A fraud-like mix: 10 skewed amounts/averages, 10 counts, 5 flags, 5 normal scores."""
    out = np.empty((n, D), dtype=np.float32)
    out[:, 0:10] = rng.lognormal(3.5, 0.9, (n, 10))
    out[:, 10:20] = rng.normal(0.0, 1.0, (n, 10))
    out[:, 5:10] = rng.poisson(4.0, (n, 5))  # small counts: profiled as categorical
    out[:, 7] = rng.random(n) < 0.2  # a flag
    out[:, 20:25] = rng.random((n, 5)) < 0.3
    out[:, 25:30] = rng.gamma(2.0, 1.0, (n, 5))
    return out


def plant(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    X = X.copy()
    X[:, 0] *= 1.5
    X[:, 7] = rng.random(len(X)) < 0.35
    X[:, 12] += 0.5
    return X


def baseline(ref: np.ndarray, X: np.ndarray, kinds: list[str]) -> dict[str, dict[str, float]]:
    """numpy + scipy from the raw reference rows: bins, PSI, exact KS / chi-squared."""
    out = {}
    for j in range(X.shape[1]):
        r, w = ref[:, j], X[:, j]
        if kinds[j] == "categorical":
            values = np.unique(r)
            rc = np.array([(r == v).sum() for v in values]) + 0.5
            wc = np.array([(w == v).sum() for v in values]) + 0.5
            test = stats.chi2_contingency(np.vstack([rc, wc]), correction=False).pvalue
            ks = float("nan")
        else:
            edges = np.unique(np.quantile(r, np.linspace(0, 1, 11)[1:-1]))
            rc = np.histogram(r, np.r_[-np.inf, edges, np.inf])[0] + 0.5
            wc = np.histogram(w, np.r_[-np.inf, edges, np.inf])[0] + 0.5
            result = stats.ks_2samp(r, w)
            ks, test = float(result.statistic), float(result.pvalue)
        p, q = rc / rc.sum(), wc / wc.sum()
        out[f"f{j:02d}"] = {"psi": float(np.sum((q - p) * np.log(q / p))), "ks": ks, "p": test}
    return out


def pvalue(f: FeatureDrift) -> float:
    """The feature's test p-value: KS (numeric) or chi-squared (categorical)."""
    found = f.ks_pvalue if f.ks_pvalue is not None else f.chi2_pvalue
    return 1.0 if found is None else found


def timed(fn: Callable[[], Any], runs: int) -> tuple[Any, float, float]:
    walls, cpus, result = [], [], None
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return result, statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=120)
    rng = np.random.default_rng(0)
    names = [f"f{j:02d}" for j in range(D)]
    with threadpool_limits(1):
        ref = columns(args.reference_rows, rng)
        ref_scores = rng.beta(1, 30, len(ref))
        t = time.perf_counter()
        blob = profile_bytes(build_profile(ref, names, scores=ref_scores))
        build_s = time.perf_counter() - t
        X = plant(columns(args.rows, rng), rng)
        scores = rng.beta(1, 30, len(X))
        console.print(
            f"reference {len(ref):,} rows, profile {len(blob) / 1024:.0f} KiB built in "
            f"{build_s:.2f} s; window {len(X):,} x {D} float32 ({X.nbytes / 2**20:.0f} MiB)"
        )

        def ours() -> Any:
            profile: ReferenceProfile = load_profile(blob)  # from the stored artifact's bytes
            return drift(profile, X, scores)

        report, wall, cpu = timed(ours, args.runs)
        kinds = [f.kind for f in load_profile(blob).features]
        base, base_wall, base_cpu = timed(lambda: baseline(ref, X, kinds), 1)
    found = report.drifted()
    tested = [f.name for f in report.features if pvalue(f) < 1e-3]
    base_found = [k for k, v in base.items() if v["psi"] > 0.1]
    base_tested = [k for k, v in base.items() if v["p"] < 1e-3]
    table = Table(title=f"drift of {args.rows:,} rows x {D} features")
    for col in ("", "wall (median)", "CPU", "PSI > 0.1", "p < 0.001", "false alarms"):
        table.add_column(col)
    for label, w, c, by_psi, by_p in (
        ("mlsd, stored profile", wall, cpu, found, tested),
        ("numpy + scipy, reference recomputed", base_wall, base_cpu, base_found, base_tested),
    ):
        table.add_row(
            label, f"{w:.2f} s", f"{c:.2f} s", ", ".join(sorted(by_psi)), ", ".join(sorted(by_p)),
            f"{len(set(by_psi) - set(PLANTED))} / {len(set(by_p) - set(PLANTED))}",
        )  # fmt: skip
    console.print(table)
    detail = Table(title="planted shifts: mlsd (binned) vs baseline (exact)")
    for col in ("feature", "shift", "PSI mlsd", "PSI baseline", "KS mlsd (bins)", "KS exact"):
        detail.add_column(col)
    for name, what in PLANTED.items():
        ours_f = next(f for f in report.features if f.name == name)
        detail.add_row(
            name, what, f"{ours_f.psi:.4f}", f"{base[name]['psi']:.4f}",
            "-" if ours_f.ks is None else f"{ours_f.ks:.4f}", f"{base[name]['ks']:.4f}",
        )  # fmt: skip
    console.print(detail)
    quiet = max(f.psi for f in report.features if f.name not in PLANTED)
    console.print(
        f"largest PSI of an unshifted feature: {quiet:.5f}; score PSI "
        f"{report.score.psi if report.score else float('nan'):.5f}; joint (PCA error) PSI "
        f"{report.multivariate.psi if report.multivariate else float('nan'):.4f}"
    )
    verdict = "[green]meets[/]" if wall <= TARGET_S else "[red]misses[/]"
    console.print(
        f"mlsd {wall:.2f} s {verdict} the {TARGET_S} s target; baseline {base_wall / wall:.1f}x "
        f"slower"
    )


if __name__ == "__main__":
    main()
