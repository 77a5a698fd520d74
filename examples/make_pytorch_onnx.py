#!/usr/bin/env python
"""Write ``pytorch_jets.onnx``, the ONNX file ``pytorch-onnx.ipynb`` uses without torch.

The notebook's torch branch trains ``JetNet`` (standardise the 42 inputs, Linear(42, 16),
ReLU, Linear(16, 1), Sigmoid) on the synthetic jets of ``make_jets.py`` and exports it
with ``torch.onnx.export``. torch is large, so this script writes the graph that export
gives, with ``onnx.helper`` and numpy only: the same ops in the same order (``Sub``,
``Div``, ``Gemm`` with ``transB=1`` as torch exports ``nn.Linear``, ``Relu``, ``Gemm``,
``Sigmoid``), input ``jets`` [batch, 42], output ``score`` [batch, 1], opset 13. Its
weights are trained here with plain numpy gradient descent on the same events, so the
scores mean something; they are not torch's. The file records this script as producer.

Usage: ``python examples/make_pytorch_onnx.py [OUTPUT]`` (default: ``pytorch_jets.onnx``
next to this script). Needs numpy, awkward and onnx.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_jets import features, jet_events  # noqa: E402

HIDDEN = 16
TRAINING_EVENTS = 4000


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def train(x: np.ndarray, y: np.ndarray, steps: int = 400, rate: float = 0.01,
          seed: int = 0) -> dict[str, np.ndarray]:
    """Full-batch Adam on binary cross-entropy; weights laid out as torch's (out, in)."""
    rng = np.random.default_rng(seed)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std
    n_in = x.shape[1]
    params = {
        "w1": rng.uniform(-1, 1, (HIDDEN, n_in)) / np.sqrt(n_in),
        "b1": np.zeros(HIDDEN),
        "w2": rng.uniform(-1, 1, (1, HIDDEN)) / np.sqrt(HIDDEN),
        "b2": np.zeros(1),
    }
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    target = y.reshape(-1, 1).astype(np.float64)
    for step in range(1, steps + 1):
        hidden = np.maximum(z @ params["w1"].T + params["b1"], 0.0)
        score = _sigmoid(hidden @ params["w2"].T + params["b2"])
        d_logit = (score - target) / len(z)
        d_hidden = (d_logit @ params["w2"]) * (hidden > 0)
        grads = {"w2": d_logit.T @ hidden, "b2": d_logit.sum(axis=0),
                 "w1": d_hidden.T @ z, "b1": d_hidden.sum(axis=0)}
        for key, grad in grads.items():
            m, v = moments[key]
            m[:] = 0.9 * m + 0.1 * grad
            v[:] = 0.999 * v + 0.001 * grad**2
            m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
            params[key] -= rate * m_hat / (np.sqrt(v_hat) + 1e-8)
    return {"mean": mean, "std": std, **params}


def onnx_model(weights: dict[str, np.ndarray]):
    """The graph ``torch.onnx.export(JetNet(), ...)`` writes, with these weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f32 = {k: np.asarray(v, np.float32) for k, v in weights.items()}
    initializers = [numpy_helper.from_array(array, name) for name, array in (
        ("mean", f32["mean"]), ("std", f32["std"]),
        ("layers.0.weight", f32["w1"]), ("layers.0.bias", f32["b1"]),
        ("layers.2.weight", f32["w2"]), ("layers.2.bias", f32["b2"]),
    )]
    nodes = [
        helper.make_node("Sub", ["jets", "mean"], ["/Sub_output_0"], name="/Sub"),
        helper.make_node("Div", ["/Sub_output_0", "std"], ["/Div_output_0"], name="/Div"),
        helper.make_node("Gemm", ["/Div_output_0", "layers.0.weight", "layers.0.bias"],
                         ["/layers/layers.0/Gemm_output_0"], name="/layers/layers.0/Gemm",
                         alpha=1.0, beta=1.0, transB=1),
        helper.make_node("Relu", ["/layers/layers.0/Gemm_output_0"],
                         ["/layers/layers.1/Relu_output_0"], name="/layers/layers.1/Relu"),
        helper.make_node("Gemm", ["/layers/layers.1/Relu_output_0", "layers.2.weight",
                                  "layers.2.bias"],
                         ["/layers/layers.2/Gemm_output_0"], name="/layers/layers.2/Gemm",
                         alpha=1.0, beta=1.0, transB=1),
        helper.make_node("Sigmoid", ["/layers/layers.2/Gemm_output_0"], ["score"],
                         name="/layers/layers.3/Sigmoid"),
    ]
    n_in = f32["mean"].shape[0]
    graph = helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("jets", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="make_pytorch_onnx.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build(output: Path) -> Path:
    events = jet_events(5000, seed=1)
    x = features(events)[:TRAINING_EVENTS].astype(np.float64)
    y = np.asarray(events["label"])[:TRAINING_EVENTS]
    import onnx

    onnx.save(onnx_model(train(x, y)), str(output))
    return output


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output", nargs="?", type=Path, default=HERE / "pytorch_jets.onnx")
    args = ap.parse_args(argv)
    print(f"wrote {build(args.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
