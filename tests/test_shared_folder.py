"""Two servers on one model folder: neither answers from a version the other deleted or
replaced, numbers are never reused, and a version committed by one is seen by the
other on the next request that names it. Two real ``jupyter server`` processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from servers import ServerProcess, jupyter_server

from tfaas_jupyter.client.forms import encode_multipart

pytestmark = pytest.mark.timeout(900)

N_IN = 4


def linear_graphdef(directory: Path, seed: int, n_out: int) -> tuple[Path, np.ndarray,
                                                                     np.ndarray]:
    """A frozen GraphDef ``y = x @ W + b`` (float32) and its weights, for numpy."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(N_IN, n_out)).astype(np.float32)
    bias = rng.normal(size=(n_out,)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, N_IN], name="x")
        tf.identity(tf.matmul(x, tf.constant(weights)) + tf.constant(bias), name="y")
    path = directory / "model.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path, weights, bias


def upload(server: ServerProcess, name: str, model: Path) -> dict[str, Any]:
    params = {"name": name, "inputNode": "x", "outputNode": "y", "model": "model.pb"}
    body, ctype = encode_multipart(
        {"name": name},
        {"model": ("model.pb", model.read_bytes(), "application/octet-stream"),
         "params": ("params.json", json.dumps(params).encode(), "application/json")},
    )
    code, raw = server.request("POST", "tfaas/upload", body, {"Content-Type": ctype},
                               timeout=240)
    assert code == 200, raw
    return json.loads(raw)


def expected(rows: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The model's answer computed by numpy, in float64 (no TensorFlow)."""
    return rows.astype(np.float64) @ weights.astype(np.float64) + bias


def answers(server: ServerProcess, name: str, rows: np.ndarray,
            version: int | None = None) -> dict[str, np.ndarray]:
    """The model's outputs for ``rows`` through the original JSON API and KServe V2."""
    doc: dict[str, Any] = {"model": name, "values": rows.tolist()}
    if version is not None:
        doc["version"] = version
    code, original = server.json("POST", "tfaas/json", doc)
    assert code == 200, original
    path = f"tfaas/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
    code, v2 = server.json("POST", path, {"inputs": [
        {"name": "x", "shape": list(rows.shape), "datatype": "FP32",
         "data": rows.ravel().tolist()}]})
    assert code == 200, v2
    out = v2["outputs"][0]
    return {"json": np.asarray(original, dtype=np.float64).reshape(len(rows), -1),
            "v2": np.asarray(out["data"], dtype=np.float64).reshape(out["shape"])}


def assert_answers(server: ServerProcess, name: str, rows: np.ndarray,
                   weights: np.ndarray, bias: np.ndarray, version: int | None = None) -> None:
    want = expected(rows, weights, bias)
    for api, got in answers(server, name, rows, version).items():
        assert got.shape == want.shape, (api, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=api)


def test_two_servers_on_one_folder_never_answer_from_a_deleted_model(tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    old_pb, old_w, old_b = linear_graphdef(tmp_path / "old", seed=1, n_out=2)
    new_pb, new_w, new_b = linear_graphdef(tmp_path / "new", seed=2, n_out=3)
    rows = np.random.default_rng(7).normal(size=(3, N_IN)).astype(np.float32)
    with jupyter_server(tmp_path / "a", model_dir=model_dir, timeout=240) as a, \
            jupyter_server(tmp_path / "b", model_dir=model_dir, timeout=240) as b:
        assert upload(a, "z", old_pb)["version"] == 1
        assert_answers(b, "z", rows, old_w, old_b)  # B loads and caches version 1
        detail = b.call("GET", "tfaas/models/z")
        assert detail["versions"] == [1]
        old_size = detail["version_details"][0]["size"]

        # A deletes z and uploads another model under the same name; B is asked at once
        assert a.call("DELETE", "tfaas/delete/z")["deleted_versions"] == [1]
        assert upload(a, "z", new_pb)["version"] == 2  # numbers are never reused
        assert_answers(b, "z", rows, new_w, new_b)
        assert_answers(b, "z", rows, new_w, new_b, version=2)
        code, missing = b.json("POST", "tfaas/json",
                               {"model": "z", "version": 1, "values": rows.tolist()})
        assert code == 404 and "no version 1" in missing["error"], missing
        detail = b.call("GET", "tfaas/models/z")
        assert detail["versions"] == [2]
        size = detail["version_details"][0]["size"]
        assert size != old_size and size == a.call("GET", "tfaas/models/z")[
            "version_details"][0]["size"]
        v2 = b.call("GET", "tfaas/v2/models/z")
        assert v2["versions"] == ["2"] and v2["outputs"][0]["shape"][-1] == 3, v2

        # a version committed by A is there for B on the next request naming it
        for version in (3, 4, 5):
            pb = new_pb if version % 2 else old_pb
            assert upload(a, "z", pb)["version"] == version
            w, bias = (new_w, new_b) if version % 2 else (old_w, old_b)
            assert_answers(b, "z", rows, w, bias, version=version)
            assert_answers(b, "z", rows, w, bias)  # the latest

        # the whole model deleted by B, then uploaded again by A: still a new number
        assert b.call("DELETE", "tfaas/delete/z")["deleted_versions"] == [2, 3, 4, 5]
        assert a.json("POST", "tfaas/json", {"model": "z", "values": rows.tolist()})[0] == 404
        assert upload(a, "z", old_pb)["version"] == 6
        assert_answers(b, "z", rows, old_w, old_b)

    # and after both servers restart, the number is still not reused
    with jupyter_server(tmp_path / "c", model_dir=model_dir, timeout=240) as c:
        c.call("DELETE", "tfaas/delete/z")
        assert upload(c, "z", new_pb)["version"] == 7
        assert_answers(c, "z", rows, new_w, new_b)
