"""Numbers keep their dtype through a real server, by raw HTTP as curl sends it:
int64 in and out of an int64 model, float64 through a float64 model, on /json and
/proto; and a model's failures get their own statuses."""

from __future__ import annotations

import json
from typing import Iterator

import numpy as np
import pytest
import tfmodels
from servers import ServerProcess, jupyter_server

from tfaas_jupyter.client.forms import encode_multipart
from tfaas_jupyter.tfaas_pb2 import Predictions, Row

BIG = 2**53  # BIG + 1 is the first integer a float64 cannot hold


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """``next``: int64 ids -> ids + 1 (int64); ``triple``: float64 x -> 3x (float64);
    ``both``: int64 ids -> ids + 1 (int64) and ids / 2 (float32); ``greedy``: runs out
    of memory for n = 2**21."""
    import tensorflow as tf

    class Next(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.int64, name="ids")])
        def serve(self, ids: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"next": ids + 1}

    class Triple(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float64, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": x * 3}

    class Both(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.int64, name="ids")])
        def serve(self, ids: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"a_next": ids + 1, "b_half": tf.cast(ids, tf.float32) / 2}

    root = tmp_path_factory.mktemp("exact")
    return {
        name: tfmodels.save_module(module, root / name, archive=True).read_bytes()
        for name, module in (("next", Next()), ("triple", Triple()), ("both", Both()),
                             ("greedy", tfmodels.greedy_module()))
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           archives: dict[str, bytes]) -> Iterator[ServerProcess]:
    with jupyter_server(tmp_path_factory.mktemp("home")) as srv:
        for name, data in archives.items():
            body, ctype = encode_multipart(
                {"name": name}, {"model": (f"{name}.tar.gz", data, "application/gzip")}
            )
            code, reply = srv.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
            assert code == 200, reply
        yield srv


def post_json(server: ServerProcess, body: str) -> tuple[int, object]:
    """POST the JSON text as written (no json.dumps of Python floats on the way)."""
    code, raw = server.request("POST", "tfaas/json", body.encode(),
                               {"Content-Type": "application/json"})
    return code, json.loads(raw)


def test_int64_in_and_out_exactly_on_json(server: ServerProcess) -> None:
    code, answer = post_json(server, f'{{"model": "next", "values": [1700000000, {BIG}]}}')
    assert code == 200, answer
    assert answer == [1_700_000_001, BIG + 1]
    code, raw = server.request("POST", "tfaas/json",
                               b'{"model": "next", "values": [[1700000000, %d], [-1, 0]]}'
                               % (BIG + 1))
    assert code == 200 and raw == b"[[1700000001,%d],[0,1]]" % (BIG + 2)  # integers, no ".0"
    # a big integer written as a float was read as one: refused, never rounded
    code, answer = post_json(server, f'{{"model": "next", "values": [{BIG + 1}.0, 1]}}')
    assert code == 400 and "2**53" in answer["error"], answer
    code, answer = post_json(server, '{"model": "next", "values": [1, 0.5]}')
    assert code == 400 and "whole numbers" in answer["error"], answer
    code, answer = post_json(server, f'{{"model": "next", "values": [{2**63}, 0]}}')
    assert code == 400 and "9223372036854775807" in answer["error"], answer


def test_float64_keeps_its_precision(server: ServerProcess) -> None:
    x = [0.1, 1 / 3]
    code, answer = post_json(server, f'{{"model": "triple", "values": {json.dumps(x)}}}')
    assert code == 200, answer
    assert answer == (np.array(x, np.float64) * 3).tolist()  # not via float32
    code, answer = post_json(server, '{"model": "triple", "values": [1e300, 0]}')
    assert code == 200 and answer == [3e300, 0.0], answer


def test_outputs_of_different_dtypes(server: ServerProcess) -> None:
    code, raw = server.request("POST", "tfaas/json",
                               b'{"model": "both", "values": [[%d], [3]]}' % (BIG + 1))
    assert code == 200, raw
    assert raw.startswith(b"[[%d," % (BIG + 2))  # the int64 output exactly
    answer = json.loads(raw)
    assert answer[1] == [4, 1.5]
    assert np.float32(answer[0][1]) == np.float32(BIG + 1) / 2  # float32, as float32 prints


def test_proto_answers_carry_exact_integers_and_float64(server: ServerProcess) -> None:
    row = Row(key=["a", "b"], value=[1_700_000_000, 7], model="next")
    code, raw = server.request("POST", "tfaas/proto", row.SerializeToString(),
                               {"Content-Type": "application/octet-stream"})
    assert code == 200, raw
    classes = Predictions.FromString(raw).prediction
    assert [c.integer for c in classes] == [1_700_000_001, 8]
    assert [c.probability for c in classes] == [np.float32(1_700_000_001), 8.0]

    row = Row(value=[0.1, 2], model="triple")  # float32 on the wire in, float64 out
    code, raw = server.request("POST", "tfaas/proto", row.SerializeToString())
    assert code == 200, raw
    classes = Predictions.FromString(raw).prediction
    want = np.array([np.float32(0.1), 2], np.float64) * 3
    assert [c.number for c in classes] == want.tolist()


def test_a_model_out_of_memory_is_507(server: ServerProcess) -> None:
    code, answer = post_json(server, '{"model": "greedy", "values": [2097152]}')
    assert code == 507, answer
    assert "out of memory" in answer["error"]
    code, answer = post_json(server, '{"model": "greedy", "values": [3]}')
    assert code == 200 and answer == [3.0], answer
