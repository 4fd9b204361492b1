"""Registering a variant: the source's signature and feature views, and its own lineage.

Lineage: `parent_version` is the source version; `config["compression"]` holds the method,
its parameters, the variant it was derived from inside the run, and for static int8 the
calibration set (rows, frauds, sha256). Each variant chooses its own decision threshold on
the validation (delay) days by the source's policy: a student's scores are on another scale
than its teacher's, so the teacher's threshold would not mean the same alert budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlsd.compression.blocks import Blocks
from mlsd.compression.measure import Measured
from mlsd.compression.variant import Variant
from mlsd.registry.models import DecisionThreshold, Lineage
from mlsd.training.threshold import POLICIES, choose_threshold

if TYPE_CHECKING:
    from mlsd.registry import ModelVersion, Registry


def thresholds_for(
    mv: ModelVersion, blocks: Blocks, variants: list[Variant]
) -> dict[str, DecisionThreshold]:
    """Each variant's threshold by `mv`'s policy on the validation days (alert budget 100 when
    the source has none)."""
    policy, parameter = "alert_budget", 100.0
    if mv.threshold is not None and mv.threshold.policy in POLICIES:
        policy = mv.threshold.policy
        parameter = mv.threshold.parameter if mv.threshold.parameter is not None else parameter
    X = blocks.X("valid")
    out = {}
    for variant in variants:
        choice = choose_threshold(
            policy,
            blocks.valid,
            variant.score(X),
            alert_budget_k=int(parameter),
            review_cost=float(parameter),
        )
        out[variant.name] = DecisionThreshold(
            value=choice.value,
            policy=choice.policy,
            parameter=choice.parameter,
            validation=choice.validation,
        )
    return out


def lineage_of(mv: ModelVersion, variant: Variant) -> Lineage:
    """The source's lineage, with the source as parent and the method in `config`."""
    compression = {
        "source": mv.uri,
        "method": variant.method,
        "params": variant.params,
        "derived_from": variant.parent,
        "calibration_set": variant.calibration.to_dict() if variant.calibration else None,
    }
    base = mv.lineage
    return Lineage(
        training_set_hash=base.training_set_hash,
        feature_views=dict(base.feature_views),
        code_commit=base.code_commit,
        dataset=base.dataset,
        dataset_hash=base.dataset_hash,
        train_period=base.train_period,
        test_period=base.test_period,
        parent_version=mv.version,
        config={"compression": compression, "source_config": dict(base.config)},
    )


def register_variants(
    registry: Registry,
    mv: ModelVersion,
    blocks: Blocks,
    variants: list[Variant],
    measured: list[Measured],
    thresholds: dict[str, DecisionThreshold],
) -> dict[str, ModelVersion]:
    """Register every variant under the source's name; returns name -> version."""
    onnx_rows = {m.variant: m for m in measured if m.runtime == "onnxruntime"}
    out = {}
    for variant in variants:
        row = onnx_rows[variant.name]
        metrics = {
            "auc_roc": row.auc_roc,
            "average_precision": row.average_precision,
            "card_precision_at_100": row.card_precision_at_100,
            "p50_us_one_row": row.p50_us,
            "p99_us_one_row": row.p99_us,
            "rows_per_s_batch_1024": row.rows_per_s[1024],
            "size_bytes": float(row.size_bytes),
        }
        out[variant.name] = registry.register(
            mv.name,
            variant.artifacts,
            flavor=variant.flavor,
            signature=mv.signature,
            lineage=lineage_of(mv, variant),
            params={"method": variant.method, **variant.params},
            metrics=metrics,
            tags={"compression": variant.method, "compressed_from": f"{mv.name}/{mv.version}"},
            description=f"{variant.name}: {variant.method} of {mv.uri}",
            threshold=thresholds[variant.name],
        )
    return out
