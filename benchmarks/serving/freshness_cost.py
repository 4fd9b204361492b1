"""What the prediction cache's feature-freshness bound adds to a scoring call, in process.

Services on one data folder (`benchmarks.serving.fixture`) score one transaction per call
through `Service.score` (features from SQLite, cache, model, metrics; no prediction log):
`off` (the bound unset, the default) and `on` (tolerance 0). Each round scores 200 new
transactions (cache misses) and then the same 200 again (hits); blocks alternate between
the services so machine noise hits both alike. Run it under another checkout's `src` to
compare `off` with the code before the bound (`on` is skipped where the option does not
exist; `--off-only` runs the `off` service alone, as the code before runs). Medians and
p99, in µs.

PYTHONPATH=src:. .venv/bin/python -m benchmarks.serving.freshness_cost [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchmarks.serving.fixture import N_CUSTOMERS, N_TERMINALS, prepare_home


def _transactions(n: int, offset: int) -> list[Any]:
    from mlsd.data.transaction import Transaction
    from mlsd.serving.testing import NOW

    rng = np.random.default_rng(offset)
    return [
        Transaction(
            offset + i,
            int(rng.integers(N_CUSTOMERS)),
            int(rng.integers(N_TERMINALS)),
            float(round(rng.random() * 300, 2)),
            NOW,
        )
        for i in range(n)
    ]


def freshness_cost(
    home: Path, rounds: int, block: int = 200, off_only: bool = False
) -> dict[str, float]:
    """p50/p99 µs of miss and hit calls per mode."""
    from mlsd.inference.batcher import BatchConfig
    from mlsd.inference.observers import ScoringRequest
    from mlsd.serving.app import build_service
    from mlsd.serving.service import ServeOptions
    from mlsd.settings import Settings

    has_bound = "cache_freshness_s" in {f.name for f in dataclasses.fields(ServeOptions)}
    modes: dict[str, dict[str, Any]] = {"off": {}}
    if has_bound and not off_only:
        modes["on"] = {"cache_freshness_s": 0.0}
    settings = Settings(home=home)
    services = {
        name: build_service(
            settings,
            ServeOptions(
                models=("fraud@champion",),
                watch_aliases=False,
                batching=BatchConfig(1, -1.0),
                log_predictions=False,
                **extra,
            ),
        )
        for name, extra in modes.items()
    }
    for service in services.values():
        service.load_all()
    timings: dict[str, list[float]] = {f"{m}_{k}": [] for m in services for k in ("miss", "hit")}

    async def run() -> None:
        for r in range(rounds + 1):  # round 0 warms up
            for name, service in services.items():
                txs = _transactions(block, (r * len(services) + len(timings)) * block * 7)
                for kind in ("miss", "hit"):
                    for tx in txs:
                        began = time.perf_counter()
                        batch = await service.score(ScoringRequest("b", "score", [tx]))
                        took = time.perf_counter() - began
                        if r and bool(batch.cached[0]) == (kind == "hit"):
                            timings[f"{name}_{kind}"].append(took)

    try:
        asyncio.run(run())
    finally:
        for service in services.values():
            service.close()
    out: dict[str, float] = {}
    for key, values in timings.items():
        us = np.array(values) * 1e6
        out[f"{key}_p50_us"] = round(float(np.median(us)), 2)
        out[f"{key}_p99_us"] = round(float(np.percentile(us, 99)), 2)
        out[f"{key}_calls"] = float(len(us))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--off-only", action="store_true", help="one service, the bound unset")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        prepare_home(home)
        print(json.dumps(freshness_cost(home, args.rounds, off_only=args.off_only), indent=2))


if __name__ == "__main__":
    main()
