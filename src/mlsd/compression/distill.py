"""Distillation: students fitted to the teacher's scores, not to the labels.

The teacher (the source version, through its served ONNX graph) scores the training days
and the unlabelled delay days; the students learn those scores, so the delay days' traffic
teaches them without a single label. Two students:

- a small GBM: LightGBM with the cross-entropy objective, which takes probabilities as
  targets; its raw score passes through the same sigmoid as a binary model's, so it is
  stored as `binary sigmoid:1` and served like any LightGBM version;
- an MLP regressing the teacher's logit (`neural.fit_mlp(soft=True)`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlsd.compression.blocks import Blocks
from mlsd.compression.neural import fit_mlp, mlp_onnx
from mlsd.compression.trees import lightgbm_files
from mlsd.compression.variant import Variant
from mlsd.registry.formats import ONNX_ARTIFACT, ONNX_FLAVOR
from mlsd.training.models import Scorer

STUDENT_GBM: dict[str, Any] = {
    "n_estimators": 60,
    "num_leaves": 8,
    "max_depth": 3,
    "learning_rate": 0.1,
    "min_child_samples": 50,
}


def transfer_set(
    blocks: Blocks, teacher: Scorer
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """The training days and the unlabelled delay days, with the teacher's scores."""
    X = np.concatenate([blocks.X("train"), blocks.X("unlabelled")])
    return X, teacher(X)


def student_gbm(blocks: Blocks, teacher: Scorer, seed: int = 0) -> Variant:
    """A small LightGBM fitted to the teacher's probabilities (cross-entropy objective)."""
    import lightgbm as lgb

    X, soft = transfer_set(blocks, teacher)
    params: dict[str, Any] = {
        **STUDENT_GBM,
        "objective": "cross_entropy",
        "random_state": seed,
        "n_jobs": 1,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }
    fitted = lgb.LGBMRegressor(**params).fit(X, soft)
    text = fitted.booster_.model_to_string()
    # cross_entropy and binary share the link sigmoid(raw): stored as binary, it exports to
    # ONNX as a classifier with the `probabilities` output serving reads
    text = text.replace("objective=cross_entropy", "objective=binary sigmoid:1", 1)
    text = text.replace("[objective: cross_entropy]", "[objective: binary]", 1)
    return Variant(
        name=f"student-gbm-{STUDENT_GBM['n_estimators']}x{STUDENT_GBM['num_leaves']}",
        method="distilled_gbm",
        params={
            **STUDENT_GBM,
            "objective": "cross_entropy (teacher probabilities)",
            "transfer_rows": len(X),
            "unlabelled_rows": len(blocks.valid),
        },
        flavor="lightgbm",
        artifacts=lightgbm_files(text, blocks.features),
    )


def student_mlp(
    blocks: Blocks,
    teacher: Scorer,
    *,
    hidden: tuple[int, ...] = (32, 16),
    max_iter: int = 60,
    seed: int = 0,
) -> Variant:
    """An MLP regressing the teacher's logit on the transfer set; ONNX fp32."""
    X, soft = transfer_set(blocks, teacher)
    mlp = fit_mlp(X, soft, hidden=hidden, soft=True, max_iter=max_iter, seed=seed)
    return Variant(
        name="student-mlp-fp32",
        method="distilled_mlp",
        params={
            "hidden": list(hidden),
            "max_iter": max_iter,
            "target": "teacher logit",
            "transfer_rows": len(X),
            "unlabelled_rows": len(blocks.valid),
            "precision": "fp32",
        },
        flavor=ONNX_FLAVOR,
        artifacts={ONNX_ARTIFACT: mlp_onnx(mlp)},
        extra={"layers": mlp.layer_names()},
    )


def label_mlp(
    blocks: Blocks, *, hidden: tuple[int, ...] = (32, 16), max_iter: int = 60, seed: int = 0
) -> Variant:
    """The same MLP fitted to the labels of the training days (no teacher): the baseline."""
    mlp = fit_mlp(
        blocks.X("train"),
        blocks.y("train").astype(np.float64),
        hidden=hidden,
        soft=False,
        max_iter=max_iter,
        seed=seed,
    )
    return Variant(
        name="mlp-fp32",
        method="mlp",
        params={
            "hidden": list(hidden),
            "max_iter": max_iter,
            "target": "labels",
            "precision": "fp32",
        },
        flavor=ONNX_FLAVOR,
        artifacts={ONNX_ARTIFACT: mlp_onnx(mlp)},
        extra={"layers": mlp.layer_names()},
    )
