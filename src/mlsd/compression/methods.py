"""The compression methods, which source flavor each applies to, and how each is made."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from mlsd.compression import calibration as cal
from mlsd.compression import distill, quantize, trees
from mlsd.compression.blocks import Blocks
from mlsd.compression.variant import Calibration, Variant
from mlsd.errors import ValidationError
from mlsd.registry.formats import LIGHTGBM_ARTIFACT, ONNX_ARTIFACT, ONNX_FLAVOR
from mlsd.training.models import Scorer, onnx_scorer

TREE_METHODS = ("fewer_trees", "smaller_trees", "pruned_ensemble")
DISTIL_METHODS = ("distilled_gbm", "distilled_mlp", "mlp")
PRECISION_METHODS = ("fp16", "int8_dynamic", "int8_static", "int8_static_per_channel", "int8_mixed")
METHODS = (*TREE_METHODS, *DISTIL_METHODS, *PRECISION_METHODS)
"""Every method `mlsd compress --method` knows, in the order they are made."""


@dataclass(frozen=True)
class Options:
    """How to compress: methods (None = every one that applies), calibration, tolerances."""

    methods: tuple[str, ...] | None = None
    calibration_rows: int = 2048
    fraud_share: float = 0.1
    tolerance: float = 0.01
    mlp_hidden: tuple[int, ...] = (32, 16)
    mlp_iterations: int = 60
    seed: int = 0


def check_methods(methods: tuple[str, ...] | None, flavor: str) -> tuple[list[str], dict[str, str]]:
    """(methods to run, skipped method -> why) for a source of `flavor`.

    Asked-for methods that cannot apply raise a ValidationError naming the flavor; when no
    method is named, the inapplicable ones are skipped with the reason.
    """
    if methods is not None:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValidationError(
                f"unknown method {unknown[0]!r}; use one of {', '.join(METHODS)}", field="method"
            )
    wanted = list(methods) if methods else list(METHODS)
    skipped: dict[str, str] = {}
    for method in wanted:
        if method in TREE_METHODS and flavor != "lightgbm":
            skipped[method] = f"needs a LightGBM source; the source is {flavor}"
        if method == "mlp" and flavor == ONNX_FLAVOR:
            skipped[method] = "the source is already an ONNX-only neural model"
    if methods and skipped:
        method, why = next(iter(skipped.items()))
        raise ValidationError(f"method {method} cannot convert this model: {why}", field="method")
    return [m for m in wanted if m not in skipped], skipped


@contextmanager
def quiet() -> Iterator[None]:
    """ONNX Runtime's quantizer logs a pre-processing hint on the root logger every call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def make_variants(
    blocks: Blocks,
    flavor: str,
    artifacts: dict[str, bytes],
    methods: list[str],
    options: Options,
    advance: Callable[[str], None] = lambda _: None,
) -> list[Variant]:
    """Every variant of `methods`, made from the source (`flavor`, `artifacts`)."""
    teacher: Scorer = onnx_scorer(artifacts[ONNX_ARTIFACT])
    made: list[Variant] = []
    seed = options.seed
    if flavor == "lightgbm":
        text = artifacts[LIGHTGBM_ARTIFACT].decode()
        builders: dict[str, Callable[[], Variant]] = {
            "fewer_trees": lambda: trees.fewer_trees(text, blocks, options.tolerance),
            "smaller_trees": lambda: trees.smaller_trees(text, blocks, options.tolerance, seed),
            "pruned_ensemble": lambda: trees.pruned(text, blocks, options.tolerance),
        }
        for method in TREE_METHODS:
            if method in methods:
                made.append(builders[method]())
                advance(method)
    hidden, iterations = options.mlp_hidden, options.mlp_iterations
    if "distilled_gbm" in methods:
        made.append(distill.student_gbm(blocks, teacher, seed))
        advance("distilled_gbm")
    base: Variant | None = None
    if flavor == ONNX_FLAVOR:
        base = Variant("source-fp32", "source", {}, ONNX_FLAVOR, dict(artifacts))
    needs_base = any(m in PRECISION_METHODS for m in methods)
    if "distilled_mlp" in methods or (needs_base and base is None):
        student = distill.student_mlp(
            blocks, teacher, hidden=hidden, max_iter=iterations, seed=seed
        )
        base = base or student
        if "distilled_mlp" in methods:
            made.append(student)
        advance("distilled_mlp")
    if "mlp" in methods:
        made.append(distill.label_mlp(blocks, hidden=hidden, max_iter=iterations, seed=seed))
        advance("mlp")
    if base is not None and needs_base:
        with quiet():
            made += precision_variants(base, blocks, methods, options, advance)
    return made


def _child(base: Variant, suffix: str, method: str, data: bytes, **params: object) -> Variant:
    stem = base.name.removesuffix("-fp32")
    return Variant(
        name=f"{stem}-{suffix}",
        method=method,
        params={**base.params, **params},
        flavor=ONNX_FLAVOR,
        artifacts={ONNX_ARTIFACT: data},
        parent=base.name,
        extra=base.extra,
    )


def precision_variants(
    base: Variant,
    blocks: Blocks,
    methods: list[str],
    options: Options,
    advance: Callable[[str], None] = lambda _: None,
) -> list[Variant]:
    """fp16, int8 dynamic and the calibrated static int8 variants of the neural `base`."""
    out: list[Variant] = []
    if "fp16" in methods:
        out.append(_child(base, "fp16", "fp16", quantize.fp16(base.onnx), precision="fp16"))
        advance("fp16")
    if "int8_dynamic" in methods:
        data = quantize.int8_dynamic(base.onnx)
        out.append(_child(base, "int8-dynamic", "int8_dynamic", data, precision="int8 dynamic"))
        advance("int8_dynamic")
    static = [m for m in methods if m.startswith("int8_static") or m == "int8_mixed"]
    if not static:
        return out
    values, calibration = cal.calibration_set(
        blocks.X("train"),
        blocks.y("train"),
        rows=options.calibration_rows,
        fraud_share=options.fraud_share,
        seed=options.seed,
    )
    for method in static:
        out.append(static_variant(base, blocks, method, values, calibration))
        advance(method)
    return out


def static_variant(
    base: Variant,
    blocks: Blocks,
    method: str,
    matrix: NDArray[np.float32],
    calibration: Calibration,
) -> Variant:
    """One static int8 variant of `base` calibrated on `matrix` (`method` picks how)."""
    from sklearn.metrics import average_precision_score

    per_channel = method == "int8_static_per_channel"
    keep: list[str] = []
    extra: dict[str, object] = {}
    if method == "int8_mixed":
        X, y = blocks.X("valid"), blocks.y("valid")
        fp32 = float(average_precision_score(y, onnx_scorer(base.onnx)(X)))

        def ap(graph: bytes) -> float:
            return float(average_precision_score(y, onnx_scorer(graph)(X)))

        with quiet():
            alone = quantize.sensitivity(base.onnx, matrix, ap)
        losses = {layer: fp32 - value for layer, value in alone.items()}
        keep = [max(losses, key=lambda k: losses[k])]
        extra = {"layer_validation_ap_loss": losses}
    with quiet():
        data = quantize.int8_static(base.onnx, matrix, per_channel=per_channel, keep_fp32=keep)
    suffix = {
        "int8_static": "int8-static",
        "int8_static_per_channel": "int8-static-channel",
        "int8_mixed": "int8-mixed",
    }[method]
    variant = _child(
        base,
        suffix,
        method,
        data,
        precision="int8 static QDQ",
        granularity="per-channel" if per_channel else "per-tensor",
        kept_fp32=keep,
        calibration=calibration.to_dict(),
        **extra,
    )
    return replace(variant, calibration=calibration)
