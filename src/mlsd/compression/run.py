"""`compress`: make every variant of a registered model, measure them, register the good ones.

Order matters for "nothing half registered": every variant is made and measured, the
accuracy floor checked on all of them and each decision threshold chosen, before the
first version is written; the registry writes each version in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlsd.compression.blocks import Blocks, load_blocks
from mlsd.compression.measure import USD_PER_CORE_HOUR, Budget, Measured, measure, warm_libraries
from mlsd.compression.methods import Options, check_methods, make_variants
from mlsd.compression.register import register_variants, thresholds_for
from mlsd.compression.variant import Variant
from mlsd.errors import GateRejectedError, ValidationError
from mlsd.registry.formats import LIGHTGBM_ARTIFACT, ONNX_ARTIFACT

if TYPE_CHECKING:
    from mlsd.registry import ModelVersion, Registry
    from mlsd.training.dataset import FeatureSource

Step = Callable[[str], None]


class AccuracyFloorError(GateRejectedError):
    """Variants below the accuracy floor: nothing was registered; the run's figures ride along
    (`compression`), so the report of the refused run can still be written."""

    def __init__(self, message: str, compression: Compression) -> None:
        super().__init__(message, field="min_ap")
        self.compression = compression


@dataclass
class Compression:
    """What one run made and found."""

    source: ModelVersion
    blocks: Blocks
    variants: list[Variant]
    measured: list[Measured]
    skipped: dict[str, str]
    usd_per_core_hour: float
    registered: dict[str, ModelVersion] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


def source_variant(registry: Registry, mv: ModelVersion) -> Variant:
    """The registered source itself, measured beside its variants (`source` row)."""
    if ONNX_ARTIFACT not in mv.artifacts:
        raise ValidationError(f"{mv.uri} has no {ONNX_ARTIFACT} to compress", field="from")
    files = {ONNX_ARTIFACT: registry.load_artifact(mv, ONNX_ARTIFACT)}
    if LIGHTGBM_ARTIFACT in mv.artifacts:
        files[LIGHTGBM_ARTIFACT] = registry.load_artifact(mv, LIGHTGBM_ARTIFACT)
    return Variant(f"source v{mv.version}", "source", dict(mv.params), mv.flavor, files)


def compress(
    registry: Registry,
    uri: str,
    features: FeatureSource,
    *,
    options: Options | None = None,
    budget: Budget | None = None,
    min_ap: float | None = None,
    register: bool = True,
    usd_per_core_hour: float = USD_PER_CORE_HOUR,
    step: Step = lambda _: None,
) -> Compression:
    """Compress `uri` (e.g. `fraud@champion`); register the variants unless `register=False`.

    AccuracyFloorError (a GateRejectedError; nothing registered) when a variant's test AP is
    below `min_ap`; the figures are then on the error's `compression` attribute.
    """
    options = options or Options()
    budget = budget or Budget()
    if min_ap is not None and not 0.0 <= min_ap <= 1.0:
        raise ValidationError(f"min_ap must be within [0, 1], got {min_ap}", field="min_ap")
    if usd_per_core_hour <= 0:
        raise ValidationError(
            "the price of a core-hour must be positive", field="usd_per_core_hour"
        )
    mv = registry.resolve(uri if uri.startswith("models:/") else f"models:/{uri}")
    methods, skipped = check_methods(options.methods, mv.flavor)
    source = source_variant(registry, mv)
    blocks = load_blocks(mv, features)
    step(
        f"blocks: {len(blocks.train):,} training, {len(blocks.valid):,} delay, "
        f"{len(blocks.test):,} test rows"
    )
    variants = make_variants(blocks, mv.flavor, source.artifacts, methods, options, step)
    X_test = blocks.X("test")
    warm_libraries(source, X_test.shape[1])
    measured: list[Measured] = []
    for variant in (source, *variants):
        measured += measure(
            variant,
            X_test,
            blocks.test,
            budget=budget,
            usd_per_core_hour=usd_per_core_hour,
            seed=options.seed,
        )
        step(f"measured {variant.name}")
    result = Compression(mv, blocks, variants, measured, skipped, usd_per_core_hour)
    if min_ap is not None:
        ap = {m.variant: m.average_precision for m in measured}
        result.refused = {
            v.name: f"test AP {ap[v.name]:.4f} < {min_ap:g}"
            for v in variants
            if ap[v.name] < min_ap
        }
        if result.refused:
            raise AccuracyFloorError(
                f"{len(result.refused)} of {len(variants)} variants fail the accuracy floor "
                f"(--min-ap {min_ap:g}): "
                + "; ".join(f"{n}: {why}" for n, why in result.refused.items())
                + ". Nothing was registered.",
                result,
            )
    if register and variants:
        thresholds = thresholds_for(mv, blocks, variants)
        result.registered = register_variants(registry, mv, blocks, variants, measured, thresholds)
        step(f"registered {len(result.registered)} versions")
    return result
