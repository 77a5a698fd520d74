"""ONNX models (what ``torch.onnx.export`` writes), served as TensorFlow SavedModels.

Imported only inside the model worker. ``onnx2tf`` converts the ``.onnx`` file once into
a SavedModel beside it (``saved_model/`` in the version folder, so uploads convert while
they are validated and the repository then holds both); later loads use that folder.

Layout: onnx2tf turns channels-first inputs (NCW, NCHW, NCDHW) into channels-last by
default. Clients of a PyTorch model send what the model was trained on, channels first,
so every input of rank 3 to 5 is converted with its ONNX layout kept: the served
signature is the ONNX model's own, and requests need no transposition. Such inputs carry
``"layout": "NCHW"`` (or NCW, NCDHW) in their signature entry.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import re
import shutil
import tempfile
from typing import Any

#: The packages of the ``[onnx]`` extra that the conversion needs in the worker's Python.
_NEEDED = ("onnx", "onnx2tf", "tf_keras", "onnx_graphsurgeon", "sng4onnx", "ai_edge_litert")
_EXTRA_HINT = "pip install 'tfaas-jupyter[onnx]' in the model worker's Python"

#: Where the converted SavedModel of ``model.onnx`` lives inside a version folder.
CONVERTED = "saved_model"

_LAYOUTS = {3: "NCW", 4: "NCHW", 5: "NCDHW"}

#: Converted models of read-only version folders (e.g. copied in by hand), per worker.
_scratch: dict[str, str] = {}


class ConversionError(Exception):
    """The ONNX model cannot be converted; the message is one line naming the cause."""


def _missing_packages() -> list[str]:
    """The extra's packages that this Python cannot import (absent or broken)."""
    missing = []
    for name in _NEEDED:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def _unsupported_ops(model: Any) -> list[str]:
    """Op types of the graph (and its subgraphs) that onnx2tf has no converter for."""
    seen: dict[str, str] = {}

    def walk(graph: Any) -> None:
        for node in graph.node:
            seen.setdefault(node.op_type, node.domain)
            for attr in node.attribute:
                if attr.HasField("g"):
                    walk(attr.g)
                for sub in attr.graphs:
                    walk(sub)

    walk(model.graph)
    missing = []
    for op, domain in sorted(seen.items()):
        if not op.isidentifier() or importlib.util.find_spec(f"onnx2tf.ops.{op}") is None:
            missing.append(f"{op} ({domain})" if domain not in ("", "ai.onnx") else op)
    return missing


def _channels_first_inputs(model: Any) -> dict[str, str]:
    """Graph inputs (initializers excluded) of rank 3-5, with their channels-first layout."""
    initializers = {i.name for i in model.graph.initializer}
    layouts = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        rank = len(value.type.tensor_type.shape.dim)
        if rank in _LAYOUTS:
            layouts[value.name] = _LAYOUTS[rank]
    return layouts


def graph_names(onnx_path: str) -> tuple[dict[str, str], list[str]]:
    """(channels-first layout of each input by its SavedModel name, output names in order)."""
    import onnx

    model = onnx.load(onnx_path, load_external_data=False)
    layouts = {_tf_name(name): layout for name, layout in _channels_first_inputs(model).items()}
    return layouts, [o.name for o in model.graph.output]


def _tf_name(name: str) -> str:
    """The SavedModel input name onnx2tf gives an ONNX input (``input.1`` -> ``input_1``)."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def convert(onnx_path: str, target: str) -> None:
    """Convert ``onnx_path`` into a SavedModel folder ``target`` (replaced atomically)."""
    missing = _missing_packages()
    if missing:
        raise ConversionError(
            f"ONNX models need the [onnx] extra ({', '.join(missing)} missing): {_EXTRA_HINT}"
        )
    import onnx

    try:
        model = onnx.load(onnx_path)
    except Exception as exc:  # onnx raises DecodeError and friends for a corrupt file
        raise ConversionError(f"not a valid ONNX model: {_first_line(exc)}") from None
    if not len(model.graph.node):
        raise ConversionError("the ONNX model has no nodes")
    unsupported = _unsupported_ops(model)
    if unsupported:
        raise ConversionError(
            "the ONNX model uses op(s) the converter (onnx2tf) cannot convert: "
            + ", ".join(unsupported)
        )
    keep = sorted(_channels_first_inputs(model))
    work = tempfile.mkdtemp(prefix=".onnx2tf-", dir=os.path.dirname(target) or None)
    chatter = io.StringIO()
    try:
        import onnx2tf

        # onnx2tf rewrites its input file (names ops): give it a copy, keep the original
        source = os.path.join(work, "input.onnx")
        shutil.copyfile(onnx_path, source)
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            onnx2tf.convert(
                input_onnx_file_path=source,
                output_folder_path=work,
                non_verbose=True,
                output_signaturedefs=True,
                keep_ncw_or_nchw_or_ncdhw_input_names=keep or None,
            )
        for leftover in os.listdir(work):
            if leftover.endswith((".tflite", ".onnx")):  # by-products and the copy
                os.unlink(os.path.join(work, leftover))
        if not os.path.isfile(os.path.join(work, "saved_model.pb")):
            raise ConversionError("the converter (onnx2tf) wrote no SavedModel")
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.rename(work, target)
    except ConversionError:
        raise
    except BaseException as exc:  # onnx2tf raises whatever its op converters raise
        said = [ln for ln in chatter.getvalue().splitlines() if "ERROR" in ln]
        reason = _strip_ansi(said[-1]) if said else _first_line(exc)
        raise ConversionError(f"the ONNX model cannot be converted: {reason}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def saved_model_for(onnx_path: str) -> str:
    """The SavedModel converted from ``onnx_path``, converting it on first use.

    Beside the ONNX file when that folder is writable (an upload being validated);
    otherwise in a scratch folder of this worker process.
    """
    home = os.path.dirname(os.path.abspath(onnx_path))
    beside = os.path.join(home, CONVERTED)
    if os.path.isfile(os.path.join(beside, "saved_model.pb")):
        return beside
    if os.access(home, os.W_OK):
        convert(onnx_path, beside)
        return beside
    cached = _scratch.get(onnx_path)
    if cached is None or not os.path.isdir(cached):
        cached = os.path.join(tempfile.mkdtemp(prefix="tfaas-onnx-"), CONVERTED)
        convert(onnx_path, cached)
        _scratch[onnx_path] = cached
    return cached


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text).strip()[:300]
