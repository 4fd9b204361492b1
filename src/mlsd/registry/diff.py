"""Side-by-side comparison of two versions: metrics, params, lineage and environment."""

from __future__ import annotations

from typing import Any

from mlsd.registry.models import ModelVersion


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def _section(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    keys = sorted(set(a) | set(b))
    return {k: {"a": a.get(k), "b": b.get(k), "same": a.get(k) == b.get(k)} for k in keys}


def _threshold(mv: ModelVersion) -> dict[str, Any]:
    if mv.threshold is None:
        return {}
    return _flatten(mv.threshold.model_dump(mode="json"))


def diff(a: ModelVersion, b: ModelVersion) -> dict[str, Any]:
    """`{"a": uri, "b": uri, section: {key: {"a", "b", "same"}}}` for each section.

    Sections: `metrics`, `threshold` (value, policy, parameter, validation figures),
    `params`, `lineage` (flattened: `feature_views.txn`), `signature`, `artifacts`
    (sha256 per file), `environment` (python, platform and every package version; only
    differing packages are listed).
    """
    env_a = {"python": a.environment.python, "platform": a.environment.platform}
    env_b = {"python": b.environment.python, "platform": b.environment.platform}
    pkgs_a, pkgs_b = a.environment.packages, b.environment.packages
    for name in sorted(set(pkgs_a) | set(pkgs_b)):
        if pkgs_a.get(name) != pkgs_b.get(name):
            env_a[f"packages.{name}"] = pkgs_a.get(name, "")
            env_b[f"packages.{name}"] = pkgs_b.get(name, "")
    lineage_a = _flatten(a.lineage.model_dump(mode="json"))
    lineage_b = _flatten(b.lineage.model_dump(mode="json"))
    sig_a = {
        "features": ",".join(a.signature.feature_names),
        "dtypes": ",".join(a.signature.dtypes),
    }
    sig_b = {
        "features": ",".join(b.signature.feature_names),
        "dtypes": ",".join(b.signature.dtypes),
    }
    return {
        "a": a.uri,
        "b": b.uri,
        "metrics": _section(dict(a.metrics), dict(b.metrics)),
        "threshold": _section(_threshold(a), _threshold(b)),
        "params": _section(_flatten(a.params), _flatten(b.params)),
        "lineage": _section(lineage_a, lineage_b),
        "signature": _section(sig_a, sig_b),
        "artifacts": _section(dict(a.artifacts), dict(b.artifacts)),
        "environment": _section(env_a, env_b),
    }
