"""How a model is stored: its flavors, artifact file names, the ONNX contract, one ONNX loader.

Training writes these files, the registry stores and checks them, inference loads
them: every one of them names a flavor, a file or an ONNX tensor from here. No
pickle: a LightGBM model is its model text, a logistic model its coefficients as
JSON, and every flavor also ships `model.onnx` for serving.

>>> check_flavor("lightgbm")
'lightgbm'
>>> NATIVE_ARTIFACT["logistic"]
'coefficients.json'
>>> check_flavor("xgboost")
Traceback (most recent call last):
...
mlsd.errors.ValidationError: unknown flavor 'xgboost'; use one of ('lightgbm', 'logistic')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from mlsd.errors import IntegrityError, ValidationError

if TYPE_CHECKING:
    import onnxruntime

Flavor = Literal["lightgbm", "logistic"]
FLAVORS: tuple[Flavor, ...] = ("lightgbm", "logistic")
"""The flavors training fits."""
StoredFlavor = Literal["lightgbm", "logistic", "onnx"]
ONNX_FLAVOR: Literal["onnx"] = "onnx"
"""A model known only by its ONNX graph: the compressed neural variants (`mlsd.compression`)."""
STORED_FLAVORS: tuple[StoredFlavor, ...] = (*FLAVORS, ONNX_FLAVOR)
"""The flavors the registry stores: the trainable ones, and ONNX-only models."""

ONNX_ARTIFACT = "model.onnx"
"""Every flavor's serving form: ONNX, float32 `input` (n, k) -> `probabilities` (n, 2)."""
LIGHTGBM_ARTIFACT = "model.lgb.txt"
"""A LightGBM model's own text (`Booster.model_to_string`)."""
COEFFICIENTS_ARTIFACT = "coefficients.json"
"""A logistic model's scaler statistics and weights, enough to score with numpy alone."""
NATIVE_ARTIFACT: dict[StoredFlavor, str] = {
    "lightgbm": LIGHTGBM_ARTIFACT,
    "logistic": COEFFICIENTS_ARTIFACT,
    "onnx": ONNX_ARTIFACT,
}
"""Each flavor's own (non-ONNX) form, for audits, reloads and the native fallback."""

ONNX_INPUT = "input"
"""The ONNX model's one input: float32 features, one row per transaction, model order."""
ONNX_OUTPUT = "probabilities"
"""The ONNX model's output: class probabilities (no ZipMap), fraud in column 1."""
ONNX_OPSET = 15
"""The default-domain opset the exporters target (onnxruntime >= 1.18 runs it)."""


def check_flavor(flavor: str, field: str = "flavor") -> Flavor:
    """`flavor` if mlsd knows it; ValidationError naming `field` otherwise."""
    if flavor not in FLAVORS:
        raise ValidationError(f"unknown flavor {flavor!r}; use one of {FLAVORS}", field=field)
    return flavor


def check_stored_flavor(flavor: str, field: str = "flavor") -> StoredFlavor:
    """`flavor` if the registry can store it (a trainable flavor or `onnx`).

    >>> check_stored_flavor("onnx")
    'onnx'
    """
    if flavor not in STORED_FLAVORS:
        raise ValidationError(
            f"unknown flavor {flavor!r}; use one of {STORED_FLAVORS}", field=field
        )
    return flavor


def onnx_session(
    model_bytes: bytes, *, source: str = "ONNX model", intra_op_threads: int = 1
) -> onnxruntime.InferenceSession:
    """THE ONNX Runtime session of mlsd: CPU, one intra-op and one inter-op thread, quiet.

    One thread each, because servers scale by batching and by processes, and a
    benchmark must measure the same session serving runs (`intra_op_threads` is for the
    lab's measurement of what more threads buy). IntegrityError naming `source` when the
    bytes are no ONNX model; `check_onnx_contract` checks an mlsd one.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime's errors share no base class below Exception
        raise IntegrityError(f"{source} does not load: {exc}", field="artifacts") from exc
    return session


def check_onnx_contract(
    session: Any, *, source: str = "ONNX model", n_features: int | None = None
) -> None:
    """IntegrityError unless `session` reads `ONNX_INPUT` (`n_features` wide) into `ONNX_OUTPUT`."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    if ONNX_INPUT not in inputs or ONNX_OUTPUT not in outputs:
        raise IntegrityError(
            f"{source} must have input {ONNX_INPUT!r} and output {ONNX_OUTPUT!r}, "
            f"has {sorted(inputs)} and {outputs}",
            field="artifacts",
        )
    width = inputs[ONNX_INPUT].shape[-1]
    if n_features is not None and isinstance(width, int) and width != n_features:
        raise IntegrityError(
            f"{source} takes {width} input columns but the signature names {n_features} features",
            field="artifacts",
        )
