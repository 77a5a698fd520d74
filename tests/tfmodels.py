"""Build tiny real TensorFlow models on disk for the tests.

These run TensorFlow in the pytest process (fine for tests; the server code never does).
Each builder writes into a given directory and returns what the tests need to compute
the expected outputs in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_IN = 6  # features of the tiny models


@dataclass
class Built:
    """A model written to disk: where it is, how to load it, and a reference predictor."""

    path: Path  # what the worker gets as ``path``
    fmt: str  # "graphdef" | "savedmodel" | "keras"
    params: dict[str, Any]
    #: list of input arrays -> list of output arrays, computed with TF in-process
    reference: Callable[[list[np.ndarray]], list[np.ndarray]]
    extra: dict[str, Path] = field(default_factory=dict)  # archives, labels...


def _tiny_keras(seed: int = 0, n_out: int = 2):
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(N_IN,), name="features")
    x = keras.layers.Dense(8, activation="relu")(inp)
    out = keras.layers.Dense(n_out, activation="sigmoid", name="prob")(x)
    return keras.Model(inp, out)


def _ref_keras(model) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    def ref(xs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(model(xs[0].astype(np.float32), training=False))]

    return ref


def make_graphdef(directory: Path, *, seed: int = 1, name: str = "tiny") -> Built:
    """A frozen TF1 GraphDef: Placeholder ``x`` [None, N_IN] -> ``out`` [None, 1] (sigmoid),
    with a distractor sink-free graph. Writes model.pb, params.json, labels.txt."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(N_IN, 5)).astype(np.float32)
    b1 = rng.normal(size=(5,)).astype(np.float32)
    w2 = rng.normal(size=(5, 1)).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, N_IN], name="x")
        h = tf.nn.relu(tf.matmul(x, tf.constant(w1)) + tf.constant(b1))
        tf.sigmoid(tf.matmul(h, tf.constant(w2)), name="out")
    pb = directory / "model.pb"
    pb.write_bytes(g.as_graph_def().SerializeToString())
    params = {"name": name, "model": "model.pb", "labels": "labels.txt",
              "inputNode": "x", "outputNode": "out"}
    (directory / "params.json").write_text(json.dumps(params))
    (directory / "labels.txt").write_text("signal\n")

    def ref(xs: list[np.ndarray]) -> list[np.ndarray]:
        x = xs[0].astype(np.float32)
        h = tf.nn.relu(tf.matmul(x, w1) + b1)
        return [tf.sigmoid(tf.matmul(h, w2)).numpy()]

    return Built(pb, "graphdef", {"inputNode": "x", "outputNode": "out"}, ref,
                 {"params": directory / "params.json", "labels": directory / "labels.txt"})


def _pack(src: Path, archive: Path, *, top: str | None) -> Path:
    """Pack directory ``src`` as .tar.gz or .zip, under folder ``top`` or flat (None)."""
    files = sorted(p for p in src.rglob("*") if p.is_file())
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive, "w:gz") as tf_:
            for p in files:
                rel = p.relative_to(src).as_posix()
                tf_.add(p, arcname=f"{top}/{rel}" if top else rel)
    else:
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in files:
                rel = p.relative_to(src).as_posix()
                zf.write(p, f"{top}/{rel}" if top else rel)
    return archive


def make_keras_export(directory: Path, *, seed: int = 2) -> Built:
    """``keras_model.export(dir)`` SavedModel, plus .tar.gz/.zip packings (foldered + flat)."""
    directory.mkdir(parents=True, exist_ok=True)
    model = _tiny_keras(seed)
    sm = directory / "exported"
    if sm.exists():
        shutil.rmtree(sm)
    model.export(str(sm), verbose=False)
    extra = {
        "tar_top": _pack(sm, directory / "exported_top.tar.gz", top="exported"),
        "tar_flat": _pack(sm, directory / "exported_flat.tar.gz", top=None),
        "zip_top": _pack(sm, directory / "exported_top.zip", top="exported"),
        "zip_flat": _pack(sm, directory / "exported_flat.zip", top=None),
    }
    return Built(sm, "savedmodel", {}, _ref_keras(model), extra)


def save_module(module: Any, path: Path, *, archive: bool = False) -> Path:
    """Save a ``tf.Module`` whose ``serve`` is its serving signature as a SavedModel at
    ``path``; with ``archive``, also pack it as ``path.tar.gz`` (under its folder's name)
    and answer that."""
    import tensorflow as tf

    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    if not archive:
        return path
    return _pack(path, path.with_name(path.name + ".tar.gz"), top=path.name)


def greedy_module() -> Any:
    """A ``tf.Module`` over ``n`` (float32 ``[None, 1]``) answering ``n`` plus the sum of
    an ``n[0] x n[0]`` scratch tensor of zeros: 2**21 asks for 16 TiB, which the
    allocator refuses at once (ResourceExhausted), while small ``n`` run normally."""
    import tensorflow as tf

    class Greedy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="n")])
        def serve(self, n: tf.Tensor) -> dict[str, tf.Tensor]:
            size = tf.cast(n[0, 0], tf.int64)
            return {"y": n + tf.reduce_sum(tf.zeros(tf.stack([size, size])))}

    return Greedy()


def make_module_savedmodel(directory: Path) -> Built:
    """``tf.saved_model.save(module, dir, signatures=...)`` with two named inputs and two
    named outputs (checks the sorted-by-name order rule)."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)

    class Mod(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.linspace(-1, 1, N_IN, dtype=np.float32).reshape(N_IN, 1))

        @tf.function(input_signature=[tf.TensorSpec([None, N_IN], tf.float32, name="b_feat"),
                                      tf.TensorSpec([None, 1], tf.float32, name="a_bias")])
        def serve(self, b_feat: tf.Tensor, a_bias: tf.Tensor) -> dict[str, tf.Tensor]:
            y = tf.matmul(b_feat, self.w) + a_bias
            return {"z_score": y, "prob": tf.sigmoid(y)}

    mod = Mod()
    sm = directory / "module_sm"
    if sm.exists():
        shutil.rmtree(sm)
    tf.saved_model.save(mod, str(sm), signatures={"serving_default": mod.serve})
    w = mod.w.numpy()

    def ref(xs: list[np.ndarray]) -> list[np.ndarray]:
        # inputs sorted by name: a_bias, b_feat; outputs sorted: prob, z_score
        a_bias, b_feat = (x.astype(np.float32) for x in xs)
        y = tf.matmul(b_feat, w) + a_bias
        return [tf.sigmoid(y).numpy(), y.numpy()]

    return Built(sm, "savedmodel", {}, ref)


def make_keras_file(directory: Path, *, seed: int = 3) -> Built:
    """A ``.keras`` file of the tiny functional model."""
    directory.mkdir(parents=True, exist_ok=True)
    model = _tiny_keras(seed, n_out=3)
    path = directory / "tiny.keras"
    model.save(str(path))
    return Built(path, "keras", {}, _ref_keras(model))


def make_image_keras(directory: Path, *, classes: int, seed: int, side: int = 4):
    """A tiny dense classifier of ``side`` x ``side`` RGB images, saved as a .keras file.

    Returns (path, model): the model computes the expected outputs in-process.
    """
    import keras

    directory.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(side, side, 3))
    out = keras.layers.Dense(classes, activation="softmax")(keras.layers.Flatten()(inp))
    model = keras.Model(inp, out)
    path = directory / "img.keras"
    model.save(str(path))
    return path, model


#: Integers that float32 rounds (1700000001 → 1700000000) and float64 rounds (2**53 + 1).
BIG_IDS = (1_700_000_001, 2**53 + 1)


def make_int64_ids(directory: Path) -> Built:
    """A SavedModel with an int64 input ``ids`` [None, 2] and two int64 outputs (sorted by
    name): ``low_bits`` = ids & 1023 (small, exact in any float) and ``next_id`` = ids + 1.
    A row [a, b] answers [a & 1023, b & 1023, a + 1, b + 1]."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)

    class Ids(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.int64, name="ids")])
        def serve(self, ids: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"low_bits": tf.bitwise.bitwise_and(ids, tf.constant(1023, tf.int64)),
                    "next_id": ids + 1}

    mod = Ids()
    sm = directory / "int64_ids"
    if sm.exists():
        shutil.rmtree(sm)
    tf.saved_model.save(mod, str(sm), signatures={"serving_default": mod.serve})

    def ref(xs: list[np.ndarray]) -> list[np.ndarray]:
        out = mod.serve(tf.constant(np.asarray(xs[0], dtype=np.int64)))
        return [out["low_bits"].numpy(), out["next_id"].numpy()]

    return Built(sm, "savedmodel", {}, ref)


def make_typed_savedmodel(directory: Path) -> Built:
    """A SavedModel with inputs of three dtypes, for the standard protocols' tests:
    ``ids`` int64 [None, 3], ``x`` float32 [None, N_IN], ``flag`` bool [None, 1] ->
    ``ids_next`` = ids + 1 (int64, exact above 2**53), ``score`` = sigmoid(x @ w) float32
    [None, 1], ``flag_not`` bool [None, 1]. Packed as ``extra["tar"]`` for upload."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)
    w = np.linspace(-0.5, 0.7, N_IN, dtype=np.float32).reshape(N_IN, 1)

    class Typed(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.int64, name="ids"),
                                      tf.TensorSpec([None, N_IN], tf.float32, name="x"),
                                      tf.TensorSpec([None, 1], tf.bool, name="flag")])
        def serve(self, ids: tf.Tensor, x: tf.Tensor, flag: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"ids_next": ids + 1, "score": tf.sigmoid(tf.matmul(x, w)),
                    "flag_not": tf.logical_not(flag)}

    mod = Typed()
    sm = directory / "typed_sm"
    if sm.exists():
        shutil.rmtree(sm)
    tf.saved_model.save(mod, str(sm), signatures={"serving_default": mod.serve})

    def ref(xs: list[np.ndarray]) -> list[np.ndarray]:
        """Inputs and outputs by name: {"ids", "x", "flag"} -> [flag_not, ids_next, score]."""
        out = mod.serve(**{k: tf.constant(v) for k, v in xs[0].items()})  # type: ignore[index]
        return [out[k].numpy() for k in ("flag_not", "ids_next", "score")]

    return Built(sm, "savedmodel", {}, ref,
                 {"tar": _pack(sm, directory / "typed.tar.gz", top=None)})


def make_half_plus_three(directory: Path) -> Built:
    """TF Serving's example model: ``x`` float32 [None] -> ``y`` = 0.5 * x + 3."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)

    class Half(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": 0.5 * x + 3.0}

    mod = Half()
    sm = directory / "half_sm"
    tf.saved_model.save(mod, str(sm), signatures={"serving_default": mod.serve})
    return Built(sm, "savedmodel", {}, lambda xs: [mod.serve(tf.constant(xs[0]))["y"].numpy()],
                 {"tar": _pack(sm, directory / "half.tar.gz", top=None)})


def make_signal_sensor(directory: Path) -> Built:
    """The numeric inputs of TF Serving's REST examples: ``signal`` float32 [None, 5] and
    ``sensor`` float32 [None, 2, 2] -> ``total`` [None] (sums) and ``peak`` [None, 2]."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)

    class Signals(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="signal"),
                                      tf.TensorSpec([None, 2, 2], tf.float32, name="sensor")])
        def serve(self, signal: tf.Tensor, sensor: tf.Tensor) -> dict[str, tf.Tensor]:
            total = tf.reduce_sum(signal, axis=1) + tf.reduce_sum(sensor, axis=[1, 2])
            return {"total": total, "peak": tf.reduce_max(sensor, axis=2)}

    mod = Signals()
    sm = directory / "signals_sm"
    tf.saved_model.save(mod, str(sm), signatures={"serving_default": mod.serve})

    def ref(xs: list[np.ndarray]) -> list[np.ndarray]:
        """[signal, sensor] -> [peak, total] (outputs sorted by name)."""
        out = mod.serve(tf.constant(xs[0], tf.float32), tf.constant(xs[1], tf.float32))
        return [out["peak"].numpy(), out["total"].numpy()]

    return Built(sm, "savedmodel", {}, ref,
                 {"tar": _pack(sm, directory / "signals.tar.gz", top=None)})


def make_runtime_failure(directory: Path) -> Built:
    """A SavedModel that loads (and warms up on zeros) but fails while running on any
    row whose sum is positive: it then reads a file that does not exist (NotFoundError,
    the model's own failure, not the request's)."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)

    class Failing(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, N_IN], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            def missing() -> tf.Tensor:
                size = tf.strings.length(tf.io.read_file("/nonexistent/tfaas-runtime-failure"))
                return x + tf.cast(size, tf.float32)

            return {"y": tf.cond(tf.reduce_sum(x) > 0, missing, lambda: x)}

    module = Failing()
    sm = directory / "failing_sm"
    if sm.exists():
        shutil.rmtree(sm)
    tf.saved_model.save(module, str(sm), signatures={"serving_default": module.serve})
    return Built(sm, "savedmodel", {}, lambda xs: [xs[0].astype(np.float32)])


def make_dense_keras(directory: Path, *, hidden: int, seed: int, n_in: int = 512,
                     n_out: int = 4) -> Built:
    """A ``.keras`` file of ``n_in`` -> Dense(``hidden``, relu) -> Dense(``n_out``):
    about ``4 * n_in * hidden`` bytes of weights (512 x 2048: 4 MiB). Its reference is a
    numpy forward pass of the saved weights, not TensorFlow."""
    import keras

    directory.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(n_in,), name="x")
    h = keras.layers.Dense(hidden, activation="relu")(inp)
    model = keras.Model(inp, keras.layers.Dense(n_out, name="y")(h))
    path = directory / f"dense{hidden}_{seed}.keras"
    model.save(str(path))
    w1, b1, w2, b2 = (np.asarray(w, np.float64) for w in model.get_weights())

    def ref(xs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.maximum(xs[0] @ w1 + b1, 0) @ w2 + b2]

    return Built(path, "keras", {}, ref)
