"""Shared helpers of the feature store benchmarks: child processes with peak RSS, medians."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so a child would report its
# parent's peak when that is higher.
PEAK = """
import json as _json
_hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print("__RESULT__" + _json.dumps({**RESULT, "peak_mb": int(_hwm.split()[1]) / 1024}), flush=True)
"""


def run_child(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `code` (which must set a dict RESULT) in a fresh Python; RESULT plus peak_mb."""
    out = subprocess.run(
        [sys.executable, "-c", code + PEAK],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{out.stderr[-3000:]}")
    if "__RESULT__" not in out.stdout:
        raise RuntimeError(f"benchmark child printed no result:\n{out.stdout[-2000:]}")
    line = out.stdout.split("__RESULT__", 1)[1].splitlines()[0]
    result: dict[str, Any] = json.loads(line)
    return result


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    return float(statistics.median(values))


def handbook_dataset(folder: Path, days: int = 183) -> Path:
    """The handbook's full configuration (5,000 customers, 10,000 terminals), simulated once."""
    from mlsd.data.config import SimulatorConfig
    from mlsd.data.io import is_dataset, write_dataset
    from mlsd.data.simulator import simulate

    if is_dataset(folder):
        return folder
    return write_dataset(simulate(SimulatorConfig(n_days=days)), folder)
