"""Benchmark: the handbook protocol on the handbook configuration, against its tables.

    .venv/bin/python -m benchmarks.training.handbook [--dataset DIR] [--runs 3]

Simulates the full handbook dataset (5,000 customers, 10,000 terminals, 183 days) unless
`--dataset` names one, builds the features with the feature store, runs `train` (model
selection by prequential validation, then the test block 2018-08-08..14), and prints:

- test AUC ROC / AP / CP@100 of LightGBM and logistic regression beside the handbook's
  baseline table, with the ratio to the best handbook figure for each metric;
- medians over `--runs` of the final fit time of each flavor, and of scoring the test
  rows natively and through ONNX (the serving path).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from mlsd.settings import Settings


def _median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from mlsd.data.config import SimulatorConfig
    from mlsd.data.io import write_dataset
    from mlsd.data.simulator import simulate
    from mlsd.features.store import FeatureStore
    from mlsd.registry.formats import ONNX_ARTIFACT
    from mlsd.training.config import TrainConfig
    from mlsd.training.dataset import matrix
    from mlsd.training.models import onnx_scorer
    from mlsd.training.pipeline import load_frame, train
    from mlsd.training.report import HANDBOOK_BASELINES, metrics_table
    from mlsd.training.selection import DEFAULT_GRIDS, fit_and_score, make_folds

    console = Console()
    work = Path(tempfile.mkdtemp(prefix="mlsd-train-bench-"))
    timings: dict[str, float] = {}
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("simulating the handbook dataset", total=4)
        dataset = args.dataset
        if dataset is None:
            started = time.perf_counter()
            dataset = write_dataset(simulate(SimulatorConfig()), work / "dataset")
            timings["simulate"] = time.perf_counter() - started
        bar.update(task, advance=1, description="building features")
        store = FeatureStore.open(Settings(home=work / "home"))
        store.apply()
        started = time.perf_counter()
        store.build(dataset)
        timings["features build"] = time.perf_counter() - started
        bar.update(task, advance=1, description="model selection and test")
        config = TrainConfig.make(dataset=str(dataset), num_threads=args.threads)
        started = time.perf_counter()
        result = train(config, store, progress=lambda m: bar.update(task, description=m))
        timings["train (selection + test)"] = time.perf_counter() - started
        bar.update(task, advance=1, description="timing fits and scoring")
        frame = load_frame(config, store, result.split.train_start, result.split.test_end)
        (fold,) = make_folds(frame, [result.split])
        fit_times: dict[str, float] = {}
        score_times: dict[str, tuple[float, float]] = {}
        X = matrix(result.test, config.features)
        for flavor, model in result.models.items():
            fit_times[flavor] = _median_seconds(
                lambda f=flavor, p=model.params: fit_and_score(
                    f, p, fold, config.features, seed=config.seed, num_threads=args.threads
                ),
                args.runs,
            )
            onnx = onnx_scorer(model.model.artifacts(list(config.features))[ONNX_ARTIFACT])
            native = _median_seconds(lambda m=model: m.model.predict(X), args.runs)
            served = _median_seconds(lambda s=onnx: s(X), args.runs)
            score_times[flavor] = (native, served)
        bar.update(task, advance=1)
        store.close()

    console.print(metrics_table(result))
    best = [max(v[i] for v in HANDBOOK_BASELINES.values()) for i in range(3)]
    ratios = Table(title="ratio to the best handbook baseline per metric (> 1: better)")
    for column in ("model", "AUC ROC", "AP", "CP@100"):
        ratios.add_column(column)
    names = ("auc_roc", "average_precision", f"card_precision_at_{config.top_k}")
    for flavor, model in result.models.items():
        values = [model.metrics[n] / b for n, b in zip(names, best, strict=True)]
        ratios.add_row(flavor, *(f"{v:.3f}" for v in values))
    console.print(ratios)

    speed = Table(
        title=f"medians of {args.runs} runs, {len(X):,} test rows, {args.threads} thread(s)"
    )
    for column in ("model", "fit (s)", "score native (ms)", "score ONNX (ms)", "ONNX/native"):
        speed.add_column(column)
    for flavor, (native, served) in score_times.items():
        speed.add_row(
            flavor,
            f"{fit_times[flavor]:.2f}",
            f"{native * 1e3:.1f}",
            f"{served * 1e3:.1f}",
            f"{served / native:.2f}",
        )
    console.print(speed)
    lgb_fit, lr_fit = fit_times.get("lightgbm"), fit_times.get("logistic")
    if lgb_fit and lr_fit:
        console.print(f"LightGBM fit / logistic fit: {lgb_fit / lr_fit:.1f}x")
    for name, seconds in timings.items():
        console.print(f"{name}: {seconds:.1f} s")
    console.print(f"grid: {DEFAULT_GRIDS}")
    console.print(f"selected: { {f: m.params for f, m in result.models.items()} }")


if __name__ == "__main__":
    main()
