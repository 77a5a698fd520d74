#!/usr/bin/env python
"""Build the demo model "vk" of the TFaaS talk as a TF1 frozen GraphDef.

A dense network 42x128x128x128x64x64x1 (ReLU, sigmoid output) with deterministic
weights, input Placeholder ``dense_1_input`` (float32, [None, 42]) and output node
``output_node0``. Writes into the target directory (default: ``seed/`` next to this
script)::

    model.pb      the frozen GraphDef
    params.json   {"name": "vk", "model": "model.pb", ..., "inputNode", "outputNode"}
    labels.txt    one label
    input.json    the talk's 42 input features, with "model": "vk"
    upload.json   the original client's upload form (absolute paths of the files above)

The inputs are raw physics quantities (pT in GeV, masses...), so the graph first
multiplies them by fixed per-feature scales; the last bias is chosen so the demo input
gets a probability well inside (0, 1) rather than a saturated 0 or 1.

Usage: ``python examples/make_seed_model.py [TARGET_DIR] [--force]``
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

SEED = 20171107
LAYERS = [42, 128, 128, 128, 64, 64, 1]
INPUT_NODE = "dense_1_input"
OUTPUT_NODE = "output_node0"
FILES = ("model.pb", "params.json", "labels.txt", "input.json", "upload.json")

_GROUPS = ["jetEta", "jetMass", "jetMassSoftDrop", "jetPhi", "jetPt", "jetTau1", "jetTau2",
           "jetTau3"]
KEYS = ["nJets", "nLeptons"] + [f"{g}_{i}" for g in _GROUPS for i in range(5)]
VALUES = [2.0, 0.0, 0.9228423833849999, -1.1428750753399999, 0.0, 0.0, 0.0, 155.239425659,
          142.709609985, 0.0, 0.0, 0.0, 83.5365982056, 120.549507141, 0.0, 0.0, 0.0,
          1.9305502176299998, -1.17742347717, 0.0, 0.0, 0.0, 481.419799805,
          449.04394531199995, 0.0, 0.0, 0.0, 0.296700358391, 0.286615312099, 0.0, 0.0, 0.0,
          0.164555206895, 0.19625715911400002, 0.0, 0.0, 0.0, 0.117722302675,
          0.155229091644, 0.0, 0.0, 0.0]
#: typical magnitude of each feature group, used to scale the inputs to O(1)
_SCALES = {"nJets": 5.0, "nLeptons": 2.0, "jetEta": 2.5, "jetMass": 200.0,
           "jetMassSoftDrop": 200.0, "jetPhi": 3.14159, "jetPt": 500.0, "jetTau1": 0.5,
           "jetTau2": 0.5, "jetTau3": 0.5}
#: the logit the demo input gets (sigmoid(0.85) ~= 0.70)
TARGET_LOGIT = 0.85


def _weights() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(SEED)
    out = []
    for n_in, n_out in zip(LAYERS[:-1], LAYERS[1:]):
        w = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out)).astype(np.float32)
        b = rng.normal(0.0, 0.05, size=(n_out,)).astype(np.float32)
        out.append((w, b))
    return out


def _scales() -> np.ndarray:
    return np.array([1.0 / _SCALES[k.split("_")[0]] for k in KEYS], dtype=np.float32)


def _forward_logit(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    h = x * _scales()
    for w, b in layers[:-1]:
        h = np.maximum(h @ w + b, 0.0)
    w, b = layers[-1]
    return h @ w + b


def layers() -> list[tuple[np.ndarray, np.ndarray]]:
    """The model's (kernel, bias) pairs, the last bias shifted so the demo input sits at
    TARGET_LOGIT (not saturated)."""
    weights = _weights()
    x = np.array([VALUES], dtype=np.float32)
    w, b = weights[-1]
    b = (b + (TARGET_LOGIT - _forward_logit(x, weights)[0])).astype(np.float32)
    weights[-1] = (w, b)
    return weights


def predict(x: np.ndarray) -> np.ndarray:
    """The model's output for rows ``x`` ([n, 42]) computed with numpy alone: [n, 1]."""
    logit = _forward_logit(np.asarray(x, dtype=np.float32), layers())
    return (1.0 / (1.0 + np.exp(-logit.astype(np.float64)))).astype(np.float32)


def _graph_def(layers: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, LAYERS[0]], name=INPUT_NODE)
        h = tf.multiply(x, tf.constant(_scales(), name="input_scale"), name="scaled_input")
        for i, (w, b) in enumerate(layers, start=1):
            with tf.name_scope(f"dense_{i}"):
                h = tf.nn.bias_add(tf.matmul(h, tf.constant(w, name="kernel")),
                                   tf.constant(b, name="bias"))
            if i < len(layers):
                h = tf.nn.relu(h, name=f"dense_{i}/Relu")
        tf.sigmoid(h, name=OUTPUT_NODE)
    return g.as_graph_def().SerializeToString()


def build(target_dir: str | os.PathLike[str] | None = None, *, force: bool = False) -> Path:
    """Write the seed files into ``target_dir`` (default ``seed/`` beside this script).

    Does nothing when all the files exist, unless ``force``. Returns the directory.
    """
    target = Path(target_dir) if target_dir is not None else Path(__file__).parent / "seed"
    target = target.resolve()
    if not force and all((target / f).exists() for f in FILES):
        return target
    target.mkdir(parents=True, exist_ok=True)

    (target / "model.pb").write_bytes(_graph_def(layers()))
    params = {"name": "vk", "model": "model.pb", "description": "vk test model",
              "labels": "labels.txt", "inputNode": INPUT_NODE, "outputNode": OUTPUT_NODE}
    (target / "params.json").write_text(json.dumps(params, indent=1) + "\n")
    (target / "labels.txt").write_text("signal\n")
    inputs = {"keys": KEYS, "values": VALUES, "model": "vk"}
    (target / "input.json").write_text(json.dumps(inputs) + "\n")
    upload = {"model": str(target / "model.pb"), "labels": str(target / "labels.txt"),
              "name": "vk", "params": str(target / "params.json")}
    (target / "upload.json").write_text(json.dumps(upload, indent=1) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target", nargs="?", default=None,
                    help="output directory (default: seed/ next to this script)")
    ap.add_argument("--force", action="store_true", help="rebuild even if the files exist")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    target = build(args.target, force=args.force)
    print(f"seed model 'vk' in {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
