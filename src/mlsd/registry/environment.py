"""Environment capture: Python, platform and every installed distribution, pinned.

Capture reads `importlib.metadata` once per process (the installed set does not
change under a running process), so registering stays fast. `diff` reports what
differs between a recorded environment and the current one at load time.
"""

from __future__ import annotations

import platform
import sys
from functools import lru_cache
from importlib import metadata
from typing import Any

from mlsd.registry.models import Environment


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@lru_cache(maxsize=1)
def current_environment() -> Environment:
    """The running interpreter's environment (cached for the life of the process)."""
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[_normalise(name)] = dist.version
    return Environment(
        python=platform.python_version(),
        implementation=sys.implementation.name,
        platform=platform.platform(),
        packages=dict(sorted(packages.items())),
    )


def diff(recorded: Environment, current: Environment | None = None) -> dict[str, Any]:
    """What differs between `recorded` and `current` (default: this process).

    Returns an empty dict when they match, else any of the keys `python`,
    `implementation`, `platform` (each `{"recorded": .., "current": ..}`) and
    `packages` (`changed` name -> [recorded, current], `missing`, `added`).
    """
    now = current or current_environment()
    out: dict[str, Any] = {}
    for key in ("python", "implementation", "platform"):
        was, is_ = getattr(recorded, key), getattr(now, key)
        if was != is_:
            out[key] = {"recorded": was, "current": is_}
    old, new = recorded.packages, now.packages
    changed = {n: [v, new[n]] for n, v in old.items() if n in new and new[n] != v}
    missing = sorted(n for n in old if n not in new)
    added = sorted(n for n in new if n not in old)
    if changed or missing or added:
        out["packages"] = {"changed": changed, "missing": missing, "added": added}
    return out
