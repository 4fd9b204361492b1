"""The model registry: versions, aliases with history, lineage, environments, artifacts.

>>> from mlsd.registry import Registry
>>> registry = Registry.open()  # doctest: +SKIP
>>> registry.resolve("models:/fraud@champion")  # doctest: +SKIP
"""

from __future__ import annotations

from mlsd.registry.gate import GateCheck, GateDecision, PromotionGate
from mlsd.registry.models import (
    AliasMove,
    DecisionThreshold,
    Environment,
    Lineage,
    ModelSummary,
    ModelVersion,
)
from mlsd.registry.names import format_uri, parse_uri
from mlsd.registry.registry import Registry
from mlsd.registry.signature import Signature

__all__ = [
    "AliasMove",
    "DecisionThreshold",
    "Environment",
    "GateCheck",
    "GateDecision",
    "Lineage",
    "ModelSummary",
    "ModelVersion",
    "PromotionGate",
    "Registry",
    "Signature",
    "format_uri",
    "parse_uri",
]
