"""Tree variants of a LightGBM source: fewer trees, smaller trees, a pruned ensemble.

- fewer trees: the source truncated to its first N trees, N early-stopped on the validation
  days: the smallest N whose validation average precision is within `tolerance` of the best
  over all N (boosting is sequential, so the first N trees are the model training would
  have stopped at).
- smaller trees: the source's parameters with at most 4 leaves (depth 2), retrained on the
  same days, then early-stopped the same way.
- pruned ensemble: ISLE post-processing (Friedman & Popescu 2003): an L1-penalised logistic
  regression on the trees' outputs over the training days keeps a sparse, reweighted subset
  of trees; the penalty is the strongest whose validation AP stays within `tolerance`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import average_precision_score

from mlsd.compression.blocks import Blocks
from mlsd.compression.lgb_text import reweighted, tree_outputs
from mlsd.compression.variant import Variant
from mlsd.registry.formats import LIGHTGBM_ARTIFACT
from mlsd.training.gbm import LightGBMModel

SMALL_TREES = {"num_leaves": 4, "max_depth": 2}


def booster(text: bytes | str) -> Any:
    """A LightGBM booster from its model text."""
    import lightgbm as lgb

    return lgb.Booster(model_str=text.decode() if isinstance(text, bytes) else text)


def lightgbm_files(text: str, features: list[str]) -> dict[str, bytes]:
    """`model.lgb.txt` and `model.onnx` (as training exports them) of a model text."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    from mlsd.registry.formats import ONNX_ARTIFACT, ONNX_INPUT, ONNX_OPSET

    model = convert_lightgbm(
        booster(text),
        initial_types=[(ONNX_INPUT, FloatTensorType([None, len(features)]))],
        zipmap=False,
        target_opset=ONNX_OPSET,
    )
    return {LIGHTGBM_ARTIFACT: text.encode(), ONNX_ARTIFACT: model.SerializeToString()}


def _sigmoid(raw: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-raw))


def early_stop(
    outputs: NDArray[np.float64], y: NDArray[np.int32], tolerance: float
) -> tuple[int, int, dict[int, float]]:
    """(chosen N, best N, validation AP by N) over the staged sums of `outputs` (rows, trees)."""
    trees = outputs.shape[1]
    step = max(1, trees // 100)
    staged = np.cumsum(outputs, axis=1)
    curve = {
        n: float(average_precision_score(y, staged[:, n - 1])) for n in range(step, trees + 1, step)
    }
    curve.setdefault(trees, float(average_precision_score(y, staged[:, -1])))
    best = max(curve, key=lambda n: (curve[n], -n))
    chosen = min(n for n, ap in curve.items() if ap >= (1.0 - tolerance) * curve[best])
    return chosen, best, curve


def fewer_trees(text: str, blocks: Blocks, tolerance: float = 0.01) -> Variant:
    """The source's first N trees, N early-stopped on the validation days."""
    source = booster(text)
    chosen, best, _ = early_stop(
        tree_outputs(source, blocks.X("valid")), blocks.y("valid"), tolerance
    )
    truncated = source.model_to_string(num_iteration=chosen)
    return Variant(
        name=f"fewer-trees-{chosen}",
        method="fewer_trees",
        params={
            "trees": chosen,
            "source_trees": source.num_trees(),
            "best_iteration": best,
            "tolerance": tolerance,
            "stopped_on": "validation average precision",
        },
        flavor="lightgbm",
        artifacts=lightgbm_files(truncated, blocks.features),
    )


def smaller_trees(text: str, blocks: Blocks, tolerance: float = 0.01, seed: int = 0) -> Variant:
    """The source's parameters with 4 leaves (depth 2), retrained, then early-stopped."""
    params = dict(blocks.config.grids[blocks.config.models[0]][0]) | SMALL_TREES
    model = LightGBMModel(params, seed=seed, num_threads=1)
    model.fit(blocks.X("train"), blocks.y("train"))
    full = model.artifacts(blocks.features)[LIGHTGBM_ARTIFACT].decode()
    retrained = booster(full)
    chosen, best, _ = early_stop(
        tree_outputs(retrained, blocks.X("valid")), blocks.y("valid"), tolerance
    )
    return Variant(
        name=f"small-trees-{chosen}x4",
        method="smaller_trees",
        params={**params, "trees": chosen, "best_iteration": best, "tolerance": tolerance},
        flavor="lightgbm",
        artifacts=lightgbm_files(retrained.model_to_string(num_iteration=chosen), blocks.features),
    )


def pruned(
    text: str,
    blocks: Blocks,
    tolerance: float = 0.01,
    penalties: tuple[float, ...] = (0.01, 0.1, 1.0),
) -> Variant:
    """ISLE: a sparse reweighted subset of the source's trees (L1 logistic on tree outputs)."""
    from sklearn.linear_model import LogisticRegression

    source = booster(text)
    train = tree_outputs(source, blocks.X("train"))
    valid = tree_outputs(source, blocks.X("valid"))
    y_valid = blocks.y("valid")
    reference = float(average_precision_score(y_valid, valid.sum(axis=1)))
    fits: list[tuple[int, float, float, NDArray[np.float64], float]] = []
    for c in penalties:
        fit = LogisticRegression(l1_ratio=1.0, C=c, solver="liblinear", max_iter=200)
        with warnings.catch_warnings():  # a path point that stops early is still a candidate
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit.fit(train, blocks.y("train"))
        w = fit.coef_[0]
        kept = int(np.count_nonzero(w))
        if kept == 0:
            continue
        ap = float(average_precision_score(y_valid, valid @ w + fit.intercept_[0]))
        fits.append((kept, c, ap, w, float(fit.intercept_[0])))
    good = [f for f in fits if f[2] >= (1.0 - tolerance) * reference] or [
        max(fits, key=lambda f: f[2])
    ]
    kept, c, ap, w, bias = min(good, key=lambda f: f[0])
    keep = [int(i) for i in np.flatnonzero(w)]
    model = reweighted(text, keep, [float(w[i]) for i in keep], bias)
    return Variant(
        name=f"pruned-{kept}",
        method="pruned_ensemble",
        params={
            "trees": kept,
            "source_trees": source.num_trees(),
            "l1_C": c,
            "valid_ap": ap,
            "source_valid_ap": reference,
            "tolerance": tolerance,
            "method": "ISLE: L1 logistic regression on the trees' outputs",
        },
        flavor="lightgbm",
        artifacts=lightgbm_files(model, blocks.features),
    )
