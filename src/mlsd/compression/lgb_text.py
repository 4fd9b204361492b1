"""LightGBM model text, edited: keep some trees, reweight them, add a bias.

LightGBM's binary raw score is the sum of its trees' leaf values (the initial score is
folded into the first tree), so a subset of trees with weights w and a bias b is again a
LightGBM model: each kept tree's leaf values times its weight, b added to every leaf of the
first kept tree (every row lands in exactly one of its leaves). The booster, its ONNX export
and the serving runtimes then need nothing new.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlsd.errors import ValidationError

_TREE = re.compile(r"^Tree=\d+\n", re.MULTILINE)


def _split(text: str) -> tuple[str, list[str], str]:
    start = _TREE.search(text)
    end = text.find("end of trees")
    if start is None or end < 0:
        raise ValidationError("not a LightGBM model text (no trees)", field="artifacts")
    head = "\n".join(
        line for line in text[: start.start()].split("\n") if not line.startswith("tree_sizes=")
    )
    body = text[start.start() : end]
    trees = [t for t in _TREE.split(body) if t.strip()]
    return head, trees, text[end:]


def _scaled(tree: str, weight: float, bias: float) -> str:
    lines = []
    for line in tree.split("\n"):
        if line.startswith("leaf_value="):
            values = np.array(line.partition("=")[2].split(), dtype=np.float64)
            values = values * weight + bias
            line = "leaf_value=" + " ".join(repr(float(v)) for v in values)
        elif line.startswith("internal_value=") and weight != 1.0:
            values = np.array(line.partition("=")[2].split(), dtype=np.float64) * weight
            line = "internal_value=" + " ".join(repr(float(v)) for v in values)
        lines.append(line)
    return "\n".join(lines)


def reweighted(text: str, keep: Sequence[int], weights: Sequence[float], bias: float) -> str:
    """The model of trees `keep` (in order), tree i's outputs times `weights[i]`, plus `bias`."""
    head, trees, tail = _split(text)
    if not keep:
        raise ValidationError("a pruned ensemble needs at least one tree", field="trees")
    blocks = []
    for new, (index, weight) in enumerate(zip(keep, weights, strict=True)):
        tree = _scaled(trees[index], float(weight), bias if new == 0 else 0.0)
        blocks.append(f"Tree={new}\n{tree.strip()}\n\n\n")
    return f"{head.rstrip()}\n\n{''.join(blocks)}{tail}"


def tree_outputs(booster: Any, X: NDArray[np.float32]) -> NDArray[np.float64]:
    """(rows, trees): each tree's raw output for each row (their sum is the raw score)."""
    leaves = np.asarray(booster.predict(X, pred_leaf=True, num_threads=1), dtype=np.int64)
    leaves = leaves.reshape(len(X), -1)
    info = booster.dump_model()["tree_info"]
    out = np.empty(leaves.shape, dtype=np.float64)
    for t, tree in enumerate(info):
        values = np.zeros(int(tree["num_leaves"]), dtype=np.float64)
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "leaf_value" in node:
                values[int(node.get("leaf_index", 0))] = float(node["leaf_value"])
            else:
                stack += [node["left_child"], node["right_child"]]
        out[:, t] = values[leaves[:, t]]
    return out
