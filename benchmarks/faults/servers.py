"""A data folder ready to serve, and `mlsd serve` / `mlsd worker` as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from mlsd.features.store import FeatureStore
from mlsd.registry import Registry
from mlsd.serving.server import free_port
from mlsd.serving.testing import NOW, register_tiny_model, seed_feature_store, tiny_model_artifacts
from mlsd.settings import Settings

CLI = [sys.executable, "-c", "from mlsd.cli.main import run; run()"]


def prepare(settings: Settings, versions: int = 1) -> None:
    """Handbook views with a few customers' features (in the settings' online store) and
    `fraud` versions 1..n, `champion` on 1."""
    store = FeatureStore.open(settings)
    try:
        views = seed_feature_store(store)
    finally:
        store.close()
    with Registry.open(settings) as registry:
        for version in range(1, versions + 1):
            register_tiny_model(registry, tiny_model_artifacts(version), views)
        registry.set_alias("fraud", "champion", 1, reason="bench", actor="bench")


def job_file(home: Path, rows: int) -> str:
    """A Parquet job of `rows` transactions in `home`; its path relative to home."""
    rng = np.random.default_rng(1)
    pd.DataFrame(
        {
            "transaction_id": np.arange(1, rows + 1),
            "customer_id": rng.integers(1, 3, rows),
            "terminal_id": 7,
            "amount": rng.random(rows) * 300,
            "timestamp": pd.Timestamp(NOW),
        }
    ).to_parquet(home / "job.parquet")
    return "job.parquet"


def env_of(settings: Settings) -> dict[str, str]:
    """The MLSD_* variables of `settings` that differ from the defaults."""
    out = {"MLSD_HOME": str(settings.home), "OMP_NUM_THREADS": "1"}
    for name in ("online_store", "cache", "registry_db", "prediction_log", "job_queue"):
        value = getattr(settings, name)
        if value:
            out[f"MLSD_{name.upper()}"] = value
    out["MLSD_REDIS_PREFIX"] = settings.redis_prefix
    out["MLSD_JOB_MAX_FILE_ROWS"] = str(settings.job_max_file_rows)
    return out


class Process:
    """`mlsd serve` (or `mlsd worker`) in a subprocess, stderr to a file."""

    def __init__(self, settings: Settings, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(settings.home) / f"process-{self.port}-{args[0]}.log"
        command = [*args, "--port", str(self.port)] if args[0] == "serve" else list(args)
        self._stderr = self.log.open("w")
        self.proc = subprocess.Popen(
            [*CLI, *command], env={**os.environ, **env_of(settings)},
            stdout=subprocess.DEVNULL, stderr=self._stderr,
        )  # fmt: skip

    def ready(self, timeout_s: float = 120.0) -> Process:
        """Wait for `/v2/health/ready` (a server)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).is_success:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"not ready after {timeout_s:.0f} s")

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (a clean stop: the log flushes) or SIGKILL, and wait."""
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()
