"""The three apps the HTTP benchmark compares, each a uvicorn `--factory` target.

- `bare_app`: FastAPI returning a constant (the ceiling of the HTTP stack);
- `naive_app`: FastAPI parsing the transaction and calling ONNX Runtime on it, no
  feature lookup, cache, log or metrics (what a first attempt looks like);
- `mlsd_app`: mlsd's real app from `MLSD_HOME` (features, cache, log, metrics).

Options come from the environment: MLSD_BENCH_ONNX (naive model path),
MLSD_BENCH_PREDLOG=0 (mlsd without its prediction log), MLSD_BENCH_CACHE=0 (no
cache), MLSD_BENCH_BATCH="max_batch_size,max_delay_ms" (micro-batching),
MLSD_BENCH_HOT_PATH=0 (/v1/score through its FastAPI route, not the hot path),
MLSD_BENCH_TUNE=0 (no GC / GIL process tuning), MLSD_BENCH_SHADOW=100 (every request
also scored in shadow by fraud/2, a copy of the champion under another version, so its
cache entries are its own: the full cost of a 100 % shadow), scored by the shadow scorer
process as under `mlsd serve` (MLSD_BENCH_SHADOW_PROCESS=0: by the server's thread).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel


def bare_app() -> FastAPI:
    """A constant answer: what FastAPI + uvicorn cost by themselves."""
    app = FastAPI()

    @app.post("/v1/score")
    async def score() -> dict[str, float]:
        return {"score": 0.5}

    return app


class _Tx(BaseModel):
    transaction_id: int
    customer_id: int
    terminal_id: int
    amount: float
    timestamp: datetime


def naive_app() -> FastAPI:
    """Parse the body, make a 15-column row from the amount and time, call ONNX Runtime."""
    from mlsd.registry.formats import ONNX_INPUT, ONNX_OUTPUT, onnx_session

    with open(os.environ["MLSD_BENCH_ONNX"], "rb") as model:
        session = onnx_session(model.read())  # the session mlsd serves with
    app = FastAPI()

    @app.post("/v1/score")
    async def score(tx: _Tx) -> dict[str, Any]:
        row = np.zeros((1, 15), dtype=np.float32)
        row[0, 0] = tx.amount
        row[0, 1] = float(tx.timestamp.weekday() >= 5)
        row[0, 2] = float(tx.timestamp.hour <= 6)
        probabilities = session.run([ONNX_OUTPUT], {ONNX_INPUT: row})[0]
        score = float(probabilities[0, 1])
        return {"transaction_id": tx.transaction_id, "score": score, "fraud": score >= 0.5}

    return app


def mlsd_app() -> FastAPI:
    """mlsd's serving app on the prepared data folder."""
    from mlsd.inference.batcher import BatchConfig
    from mlsd.serving.app import build_service, create_app
    from mlsd.serving.service import ServeOptions
    from mlsd.settings import Settings

    settings = Settings()
    tune = os.environ.get("MLSD_BENCH_TUNE", "1") != "0"
    # as `mlsd serve`: tuned, live drift on
    drift = os.environ.get("MLSD_BENCH_DRIFT", "1") != "0"
    options = ServeOptions(models=("fraud@champion",), tune_process=tune, monitor_drift=drift)
    options.shadow_process = os.environ.get("MLSD_BENCH_SHADOW_PROCESS", "1") != "0"
    batch = os.environ.get("MLSD_BENCH_BATCH")
    if batch:
        size, delay = batch.split(",")
        options.batching = BatchConfig(max_batch_size=int(size), max_delay_ms=float(delay))
    options.log_predictions = os.environ.get("MLSD_BENCH_PREDLOG", "1") != "0"
    options.cache_predictions = os.environ.get("MLSD_BENCH_CACHE", "1") != "0"
    service = build_service(settings, options)
    hot_path = os.environ.get("MLSD_BENCH_HOT_PATH", "1") != "0"
    shadow = float(os.environ.get("MLSD_BENCH_SHADOW", "0"))
    if shadow > 0:
        from mlsd.inference.endpoint import HostedEndpoint
        from mlsd.inference.routing import Variant
        from mlsd.rollout import ShadowLayer

        service.host.load("fraud/2")
        endpoint = HostedEndpoint(service.host, "fraud", None, version=2)
        service.pipeline.install(ShadowLayer("bench", Variant("v2", endpoint), shadow))
    return create_app(settings, service=service, hot_path=hot_path)
