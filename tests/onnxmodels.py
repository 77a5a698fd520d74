"""Small ONNX models built with onnx.helper (what torch.onnx.export writes, without torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph: onnx.GraphProto, path: Path, *, extra_opsets: tuple = ()) -> Path:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), *extra_opsets]
    )
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _inits(**arrays: np.ndarray) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array(a, name) for name, a in arrays.items()]


def make_mlp(path: Path, *, n_in: int = 42, seed: int = 0) -> Path:
    """x[N, n_in] -> Gemm -> Relu -> Gemm -> Sigmoid -> y[N, 1] (input name 'input.1')."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    weights = _inits(
        W1=rng.normal(size=(n_in, 16)).astype(f32), b1=rng.normal(size=16).astype(f32),
        W2=rng.normal(size=(16, 1)).astype(f32) / 4, b2=rng.normal(size=1).astype(f32),
    )
    nodes = [
        helper.make_node("Gemm", ["input.1", "W1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        weights,
    )
    return _save(graph, path)


def make_cnn(path: Path, *, channels: int = 1, side: int = 8, classes: int = 3,
             seed: int = 1) -> Path:
    """x[N, C, side, side] (channels first, as PyTorch) -> Conv -> Relu -> Flatten ->
    Gemm -> Softmax -> probs[N, classes]."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    weights = _inits(
        Wc=rng.normal(size=(4, channels, 3, 3)).astype(f32) / 3,
        bc=rng.normal(size=4).astype(f32),
        Wd=rng.normal(size=(4 * side * side, classes)).astype(f32) / 16,
        bd=rng.normal(size=classes).astype(f32),
    )
    nodes = [
        helper.make_node("Conv", ["x", "Wc", "bc"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "Wd", "bd"], ["z"]),
        helper.make_node("Softmax", ["z"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, side, side])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", classes])],
        weights,
    )
    return _save(graph, path)


def make_unconvertible(path: Path) -> Path:
    """A model with a custom-domain op (as a PyTorch custom op exports) no converter knows."""
    nodes = [
        helper.make_node("Relu", ["x"], ["h"]),
        helper.make_node("FancyJetOp", ["h"], ["y"], domain="org.example"),
    ]
    graph = helper.make_graph(
        nodes, "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    return _save(graph, path, extra_opsets=(helper.make_opsetid("org.example", 1),))


def run_onnxruntime(path: Path, x: np.ndarray) -> np.ndarray:
    """The reference: onnxruntime on the same file and input."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})[0]
