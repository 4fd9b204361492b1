"""A small MLP fraud model and its ONNX graph, written layer by layer.

The graph is built here from the fitted weights rather than by a converter, so that every
layer has a stable name (`layer0/MatMul`, ...) that quantization can keep in fp32 by name,
and the serving contract holds: float32 `input` (n, k) -> `probabilities` (n, 2):

    input -> (x - mean) / scale -> [MatMul -> Add -> Relu] x hidden -> MatMul -> Add
          -> Sigmoid -> probabilities = [1 - p, p]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mlsd.registry.formats import ONNX_INPUT, ONNX_OPSET, ONNX_OUTPUT

LOGIT_CLIP = 12.0
"""Teacher logits are clipped to ±12 (p within 6e-6 of 0 or 1) before a student fits them."""


@dataclass(frozen=True)
class Mlp:
    """A fitted MLP: input standardisation, then weights and biases of each layer."""

    mean: NDArray[np.float32]
    scale: NDArray[np.float32]
    weights: list[NDArray[np.float32]]
    biases: list[NDArray[np.float32]]

    def layer_names(self) -> list[str]:
        """The MatMul node of each layer, input to output."""
        return [f"layer{i}/MatMul" for i in range(len(self.weights))]


def fit_mlp(
    X: NDArray[np.float32],
    target: NDArray[np.float64],
    *,
    hidden: Sequence[int] = (32, 16),
    soft: bool,
    max_iter: int = 60,
    seed: int = 0,
) -> Mlp:
    """Fit on labels (`soft=False`: a classifier) or on teacher scores (`soft=True`).

    A student regresses the teacher's logit (clipped to ±LOGIT_CLIP): the sigmoid of its
    output is then the teacher's probability, the standard distillation target for a
    binary model with one output.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    mean = X.mean(axis=0).astype(np.float32)
    scale = X.std(axis=0).astype(np.float32)
    scale[scale == 0] = 1.0
    Z = (X - mean) / scale
    common = {
        "hidden_layer_sizes": tuple(hidden),
        "max_iter": max_iter,
        "random_state": seed,
        "early_stopping": True,
        "n_iter_no_change": 8,
        "batch_size": 256,
        "learning_rate_init": 1e-3,
        "alpha": 1e-4,
    }
    with warnings.catch_warnings():  # `max_iter` is the budget: stopping there is the plan
        warnings.simplefilter("ignore", ConvergenceWarning)
        if soft:
            p = np.clip(target, 1e-9, 1 - 1e-9)
            logits = np.clip(np.log(p / (1 - p)), -LOGIT_CLIP, LOGIT_CLIP)
            model = MLPRegressor(**common).fit(Z, logits)
        else:
            model = MLPClassifier(**common).fit(Z, target.astype(np.int32))
    return Mlp(
        mean,
        scale,
        [np.asarray(w, dtype=np.float32) for w in model.coefs_],
        [np.asarray(b, dtype=np.float32) for b in model.intercepts_],
    )


def mlp_onnx(mlp: Mlp) -> bytes:
    """The MLP as an ONNX graph on mlsd's contract (see the module docstring)."""
    from onnx import TensorProto, helper, numpy_helper

    width = len(mlp.mean)
    inits = [
        numpy_helper.from_array(mlp.mean, "mean"),
        numpy_helper.from_array(mlp.scale, "scale"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
    ]
    nodes = [
        helper.make_node("Sub", [ONNX_INPUT, "mean"], ["centred"], name="scale/Sub"),
        helper.make_node("Div", ["centred", "scale"], ["h_in"], name="scale/Div"),
    ]
    current = "h_in"
    last = len(mlp.weights) - 1
    for i, (w, b) in enumerate(zip(mlp.weights, mlp.biases, strict=True)):
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"B{i}")]
        nodes.append(
            helper.make_node("MatMul", [current, f"W{i}"], [f"mm{i}"], name=f"layer{i}/MatMul")
        )
        nodes.append(helper.make_node("Add", [f"mm{i}", f"B{i}"], [f"z{i}"], name=f"layer{i}/Add"))
        if i < last:
            nodes.append(helper.make_node("Relu", [f"z{i}"], [f"h{i}"], name=f"layer{i}/Relu"))
            current = f"h{i}"
        else:
            current = f"z{i}"
    nodes += [
        helper.make_node("Sigmoid", [current], ["p"], name="out/Sigmoid"),
        helper.make_node("Sub", ["one", "p"], ["q"], name="out/Sub"),
        helper.make_node("Concat", ["q", "p"], [ONNX_OUTPUT], axis=1, name="out/Concat"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlsd_mlp",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, [None, 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = 8
    return bytes(model.SerializeToString())
