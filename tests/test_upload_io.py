"""An upload is written to disk once: the server parses the form as it arrives, writes
each part once to its staging file (the original client's base64 model decoded on the
way, a tar.gz unpacked on the way) and commits that folder by renaming it. Measured on
the server process's own ``/proc/PID/io`` counters, around one upload of a large model."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from servers import jupyter_server

from tfaas_jupyter.client.forms import encode_multipart

pytestmark = pytest.mark.timeout(900)

#: Values of the big weight matrix: 4 x 2.5 M float32, 40 MB of random (incompressible)
#: bytes in the frozen graph.
WIDTH = 2_500_000


def _big_graph(directory: Path) -> tuple[Path, np.ndarray]:
    """A frozen graph ``x`` [None, 4] -> ``out`` [None, 1] = sum(x @ W), W 4 x WIDTH."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)
    w = np.random.default_rng(7).normal(size=(4, WIDTH)).astype(np.float32)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        tf.reduce_sum(tf.matmul(x, tf.constant(w)), axis=1, keepdims=True, name="out")
    pb = directory / "model.pb"
    pb.write_bytes(g.as_graph_def().SerializeToString())
    return pb, w


def _io(pid: int) -> dict[str, int]:
    """The process's I/O counters: wchar (bytes passed to write calls) and write_bytes
    (bytes sent to storage)."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return {k: int(v) for k, v in fields.items()}


def test_a_large_upload_is_written_once(tmp_path: Path) -> None:
    pb, w = _big_graph(tmp_path / "big")
    model = pb.read_bytes()
    params = {"name": "big", "model": "model.pb", "inputNode": "x", "outputNode": "out"}
    # as the original client sends it: the model part base64, Content-Encoding: base64
    body, ctype = encode_multipart(
        {"name": "big"},
        {"model": ("model.pb", base64.encodebytes(model), "application/octet-stream"),
         "params": ("params.json", json.dumps(params).encode(), "application/json")},
    )
    with jupyter_server(tmp_path / "home", timeout=240) as server:
        before = _io(server.pid)
        code, answer = server.request(
            "POST", "tfaas/upload", body,
            headers={"Content-Type": ctype, "Content-Encoding": "base64"}, timeout=600,
        )
        after = _io(server.pid)
        assert code == 200, answer
        written = after["wchar"] - before["wchar"]
        stored = after["write_bytes"] - before["write_bytes"]
        # the model's bytes once (decoded), plus params, metadata and the answer
        assert len(model) <= written <= 1.2 * len(model), (written, len(model), len(body))
        assert stored <= 1.2 * len(model), (stored, len(model))

        x = np.random.default_rng(8).normal(size=(3, 4)).astype(np.float32)
        code, reply = server.json("POST", "tfaas/json", {"model": "big", "values": x.tolist()})
        assert code == 200, reply
        want = (x.astype(np.float64) @ w.astype(np.float64)).sum(axis=1)
        np.testing.assert_allclose(np.array(reply).reshape(-1), want, rtol=1e-3)


def _big_saved_model(directory: Path) -> tuple[Path, np.ndarray]:
    """A SavedModel ``x`` [None, 4] -> ``out`` [None, 1] = sum(x @ W), W 4 x WIDTH a
    variable (40 MB of random weights), packed in a tar.gz as a user would send it."""
    import tarfile

    import tensorflow as tf

    w = np.random.default_rng(9).normal(size=(4, WIDTH)).astype(np.float32)

    class Big(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(w)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"out": tf.reduce_sum(tf.matmul(x, self.w), axis=1, keepdims=True)}

    big = Big()
    saved = directory / "bigsm"
    tf.saved_model.save(big, str(saved), signatures=big.serve)
    archive = directory / "bigsm.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(saved, arcname="bigsm")
    return archive, w


def test_a_large_saved_model_tarball_is_written_once(tmp_path: Path) -> None:
    """A SavedModel sent as a tar.gz is unpacked while it arrives: its bytes reach the
    disk once, as the files of the version folder, never as the archive too."""
    archive, w = _big_saved_model(tmp_path / "src")
    packed = archive.read_bytes()
    body, ctype = encode_multipart(
        {"name": "bigsm"}, {"model": ("bigsm.tar.gz", packed, "application/gzip")},
    )
    with jupyter_server(tmp_path / "home", timeout=240) as server:
        before = _io(server.pid)
        code, answer = server.request("POST", "tfaas/upload", body,
                                      headers={"Content-Type": ctype}, timeout=600)
        after = _io(server.pid)
        assert code == 200, answer
        assert json.loads(answer)["format"] == "savedmodel", answer
        written = after["wchar"] - before["wchar"]
        stored = after["write_bytes"] - before["write_bytes"]
        # the weights once (unpacked), plus the graph, params, metadata and the answer
        assert w.nbytes <= written <= 1.2 * len(packed), (written, len(packed))
        assert stored <= 1.2 * len(packed), (stored, len(packed))
        staging = tmp_path / "home" / "models" / ".staging"
        assert not staging.exists() or not any(staging.iterdir())

        x = np.random.default_rng(10).normal(size=(3, 4)).astype(np.float32)
        code, reply = server.json("POST", "tfaas/json", {"model": "bigsm", "values": x.tolist()})
        assert code == 200, reply
        want = (x.astype(np.float64) @ w.astype(np.float64)).sum(axis=1)
        np.testing.assert_allclose(np.array(reply).reshape(-1), want, rtol=1e-3)
