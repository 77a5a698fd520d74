"""Write a loaded model as a TF2 SavedModel with a ``serving_default`` signature.

The way out to TF Serving and KServe: every format the worker loads (frozen graphs,
SavedModels, ``.keras`` files) is saved through the same concrete function the worker
serves, so the exported model computes what the server computes. Input and output names
are the served ones, made valid signature keys (letters, digits, ``_``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tensorflow as tf

from .loaders import ModelLoadError, Predictor, _one_line
from .signaturekeys import signature_keys
from .wire import ErrorKind


class ExportError(ModelLoadError):
    """A loaded model that TensorFlow cannot save as a SavedModel: the model's failure."""

    kind = ErrorKind.MODEL


def export_savedmodel(predictor: Predictor, target: str) -> dict[str, Any]:
    """Save ``predictor`` at ``target``; answer the exported signature's keys."""
    in_keys = signature_keys([i["name"] for i in predictor.inputs], "input")
    out_keys = signature_keys([o["name"] for o in predictor.outputs], "output")
    specs = [
        tf.TensorSpec(info["shape"], tf.as_dtype(info["dtype"]), name=key)
        for info, key in zip(predictor.inputs, in_keys)
    ]
    module = tf.Module()
    keepalive = predictor._keepalive
    if isinstance(keepalive, tuple):
        keepalive = list(keepalive)
    try:
        module.served = keepalive  # variables of SavedModels and Keras models are saved
    except (TypeError, ValueError):
        pass

    def serve(*xs: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = predictor._call(list(xs))
        return {key: tf.identity(out) for key, out in zip(out_keys, outputs)}

    function = tf.function(serve, input_signature=specs, autograph=False)
    try:
        tf.saved_model.save(module, target,
                            signatures={"serving_default": function.get_concrete_function()})
    except Exception as e:  # TF raises many types when a graph cannot be serialized
        raise ExportError(f"cannot export the model as a SavedModel: {_one_line(e)}") from e
    write_signature(predictor, Path(target), in_keys, out_keys)
    return {"inputs": in_keys, "outputs": out_keys}


def write_signature(predictor: Predictor, target: Path, in_keys: list[str],
                    out_keys: list[str]) -> None:
    """``assets/signature.json``: the served inputs and outputs in the server's order, each
    with its signature key, dtype and shape (a SavedModel's signature keeps no order, and
    the rows of ``/json`` are cut into inputs in this one)."""
    doc = {
        "inputs": [{**info, "key": key} for info, key in zip(predictor.inputs, in_keys)],
        "outputs": [{**info, "key": key} for info, key in zip(predictor.outputs, out_keys)],
    }
    assets = target / "assets"
    assets.mkdir(exist_ok=True)
    (assets / SIGNATURE_FILE).write_text(json.dumps(doc, indent=1), encoding="utf-8")


#: The exported SavedModel's served signature, in its assets folder.
SIGNATURE_FILE = "signature.json"
