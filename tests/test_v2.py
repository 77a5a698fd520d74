"""The Open Inference Protocol (KServe V2) under tfaas/v2, with the real tritonclient.

tritonclient.http is gevent-based and blocking, so it talks to a real ``jupyter server``
subprocess (with a base URL, as on a hub); the protocol's edges are tested in process.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tfmodels
import tritonclient.http as httpclient
from helpers import TFaaSCaller, check_answer_schema, metric_value, scrape
from servers import jupyter_server

from tfaas_jupyter.client.forms import encode_multipart

pytestmark = pytest.mark.timeout(600)



@pytest.fixture(scope="session")
def typed(tmp_path_factory: pytest.TempPathFactory) -> tfmodels.Built:
    return tfmodels.make_typed_savedmodel(tmp_path_factory.mktemp("typed"))


def typed_inputs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(2**60, 2**62, size=(n, 3), dtype=np.int64)
    ids[0, 0] = 2**53 + 1  # the first integer a float64 cannot hold
    ids[-1, -1] = -(2**63)
    return {
        "ids": ids,
        "x": rng.normal(size=(n, tfmodels.N_IN)).astype(np.float32),
        "flag": rng.integers(0, 2, size=(n, 1)).astype(bool),
    }


def upload_archive(server: Any, name: str, archive: Path) -> dict:
    body, ctype = encode_multipart(
        {"name": name}, {"model": (archive.name, archive.read_bytes(), "application/gzip")}
    )
    code, raw = server.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
    assert code == 200, raw
    return json.loads(raw)


def test_tritonclient_unchanged(tmp_path: Path, typed: tfmodels.Built, seed_dir: Path) -> None:
    with jupyter_server(tmp_path / "home", base_url="/user/ana/") as server:
        assert upload_archive(server, "typed", typed.extra["tar"])["version"] == 1
        assert upload_archive(server, "typed", typed.extra["tar"])["version"] == 2
        client = httpclient.InferenceServerClient(
            url=f"127.0.0.1:{server.port}/user/ana/tfaas", network_timeout=120
        )
        auth = {"Authorization": f"token {server.token}"}
        try:
            assert client.is_server_live(headers=auth)
            assert client.is_server_ready(headers=auth)
            meta = client.get_server_metadata(headers=auth)
            assert "binary_tensor_data" in meta["extensions"]
            assert client.is_model_ready("typed", headers=auth)
            assert client.is_model_ready("typed", "1", headers=auth)
            assert not client.is_model_ready("typed", "7", headers=auth)
            model = client.get_model_metadata("typed", headers=auth)
            assert model["versions"] == ["1", "2"]
            assert {t["name"]: (t["datatype"], t["shape"]) for t in model["inputs"]} == {
                "ids": ("INT64", [-1, 3]), "x": ("FP32", [-1, 6]), "flag": ("BOOL", [-1, 1]),
            }
            assert {t["name"]: t["datatype"] for t in model["outputs"]} == {
                "ids_next": "INT64", "score": "FP32", "flag_not": "BOOL",
            }
            # without the token: refused
            with pytest.raises(Exception):  # noqa: B017 - tritonclient's own error type
                client.get_model_metadata("typed")

            values = typed_inputs(7)
            expected = dict(zip(("flag_not", "ids_next", "score"), typed.reference([values])))
            for binary in (False, True):
                inputs = []
                for name, datatype in (("ids", "INT64"), ("x", "FP32"), ("flag", "BOOL")):
                    tensor = httpclient.InferInput(name, list(values[name].shape), datatype)
                    tensor.set_data_from_numpy(values[name], binary_data=binary)
                    inputs.append(tensor)
                outputs = [httpclient.InferRequestedOutput(n, binary_data=binary)
                           for n in ("ids_next", "score", "flag_not")]
                result = client.infer("typed", inputs, outputs=outputs, headers=auth,
                                      model_version="1", request_id="r-1")
                assert result.get_response()["model_version"] == "1"
                assert result.get_response()["id"] == "r-1"
                ids_next = result.as_numpy("ids_next")
                assert ids_next.dtype == np.int64
                np.testing.assert_array_equal(ids_next, expected["ids_next"])
                assert ids_next[0, 0] == 2**53 + 2
                score = result.as_numpy("score")
                assert score.dtype == np.float32 and score.shape == (7, 1)
                np.testing.assert_array_equal(score, expected["score"])
                np.testing.assert_array_equal(result.as_numpy("flag_not"), expected["flag_not"])
            # no outputs named: tritonclient asks for all of them in binary
            result = client.infer("typed", inputs, headers=auth)
            assert result.get_response()["model_version"] == "2"
            np.testing.assert_array_equal(result.as_numpy("ids_next"), expected["ids_next"])

            # errors reach tritonclient as its InferenceServerException with our message
            bad = httpclient.InferInput("ids", [7, 3], "FP32")
            bad.set_data_from_numpy(values["ids"].astype(np.float32))
            with pytest.raises(Exception, match="INT64"):
                client.infer("typed", [bad, *inputs[1:]], headers=auth)
            with pytest.raises(Exception, match="not found"):
                client.get_model_metadata("nope", headers=auth)
        finally:
            client.close()


# -- the protocol's edges, in process ------------------------------------------------


def v2_body(doc: dict, *tensors: bytes) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(doc).encode()
    body = header + b"".join(tensors)
    return body, {"Inference-Header-Content-Length": str(len(header))}


def split_binary(reply: Any) -> tuple[dict, bytes]:
    length = int(reply.headers["Inference-Header-Content-Length"])
    return json.loads(reply.body[:length]), reply.body[length:]


async def test_v2_json_and_binary(tfaas: TFaaSCaller, typed: tfmodels.Built) -> None:
    reply = await tfaas.upload("typed", typed.extra["tar"].read_bytes(), filename="t.tar.gz")
    assert reply.code == 200, reply.body
    values = typed_inputs(4, seed=3)
    flag_not, ids_next, score = typed.reference([values])

    # JSON: nested data is accepted as well as flat
    doc = {"id": "a", "inputs": [
        {"name": "ids", "shape": [4, 3], "datatype": "INT64", "data": values["ids"].tolist()},
        {"name": "x", "shape": [4, 6], "datatype": "FP32",
         "data": values["x"].reshape(-1).tolist()},
        {"name": "flag", "shape": [4, 1], "datatype": "BOOL",
         "data": values["flag"].reshape(-1).tolist()},
    ]}
    reply = await tfaas.call("POST", "v2/models/typed/infer", json.dumps(doc).encode())
    assert reply.code == 200, reply.body
    assert reply.headers["Content-Type"] == "application/json"
    answer = reply.json()
    check_answer_schema(answer, "/v2/models/{name}/infer", "post")
    assert answer["model_name"] == "typed" and answer["model_version"] == "1"
    assert answer["id"] == "a"
    outs = {o["name"]: o for o in answer["outputs"]}
    assert outs["ids_next"]["datatype"] == "INT64" and outs["ids_next"]["shape"] == [4, 3]
    assert outs["ids_next"]["data"] == ids_next.reshape(-1).tolist()  # exact integers
    assert np.array_equal(np.asarray(outs["score"]["data"], np.float32), score.reshape(-1))
    assert outs["flag_not"]["data"] == flag_not.reshape(-1).tolist()

    # binary in, one binary and one JSON output out
    doc = {"inputs": [
        {"name": "x", "shape": [4, 6], "datatype": "FP32",
         "parameters": {"binary_data_size": 96}},
        {"name": "ids", "shape": [4, 3], "datatype": "INT64",
         "parameters": {"binary_data_size": 96}},
        {"name": "flag", "shape": [4, 1], "datatype": "BOOL", "data": [True, False, True, True]},
    ], "outputs": [{"name": "score", "parameters": {"binary_data": True}},
                   {"name": "ids_next"}]}
    body, headers = v2_body(doc, values["x"].astype("<f4").tobytes(),
                            values["ids"].astype("<i8").tobytes())
    reply = await tfaas.call("POST", "v2/models/typed/versions/1/infer", body, headers)
    assert reply.code == 200, reply.body
    assert reply.headers["Content-Type"] == "application/octet-stream"
    header, raw = split_binary(reply)
    assert [o["name"] for o in header["outputs"]] == ["score", "ids_next"]
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 16 == len(raw)
    assert np.array_equal(np.frombuffer(raw, "<f4").reshape(4, 1), score)
    assert header["outputs"][1]["data"] == ids_next.reshape(-1).tolist()

    # binary_data_output: every output binary, in signature order
    doc = {"inputs": doc["inputs"], "parameters": {"binary_data_output": True}}
    body, headers = v2_body(doc, values["x"].astype("<f4").tobytes(),
                            values["ids"].astype("<i8").tobytes())
    reply = await tfaas.call("POST", "v2/models/typed/infer", body, headers)
    header, raw = split_binary(reply)
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert sum(sizes) == len(raw)

    # metadata, ready, server metadata, health
    reply = await tfaas.call("GET", "v2/models/typed/versions/1")
    assert reply.code == 200 and reply.json()["platform"] == "tensorflow_savedmodel"
    check_answer_schema(reply.json(), "/v2/models/{name}/versions/{version}")
    for url, path in (("v2", "/v2"), ("v2/health/live", "/v2/health/live"),
                      ("v2/health/ready", "/v2/health/ready"),
                      ("v2/models/typed/ready", "/v2/models/{name}/ready"),
                      ("v2/models/typed/versions/1/ready",
                       "/v2/models/{name}/versions/{version}/ready"),
                      ("v2/models/typed", "/v2/models/{name}")):
        reply = await tfaas.call("GET", url)
        assert reply.code == 200, url
        check_answer_schema(reply.json(), path)


#: (request, extra headers, status, words the error must contain)
BAD_REQUESTS: list[tuple[Any, Any, int, str]] = [
    ("not json", None, 400, "not valid JSON"),
    ({"inputs": []}, None, 400, "'inputs'"),
    ({"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP99", "data": [0] * 6}]},
     None, 400, "unknown datatype"),
    ({"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0] * 5}]},
     None, 400, "holds 6 values"),
    ({"inputs": [{"name": "x", "shape": [1, -6], "datatype": "FP32", "data": [0] * 6}]},
     None, 400, "'shape'"),
    ({"inputs": [{"name": "ids", "shape": [1, 3], "datatype": "INT64",
                  "data": [1, 2.5, 3]}]}, None, 400, "whole numbers"),
    ({"inputs": [{"name": "ids", "shape": [1, 3], "datatype": "INT64",
                  "data": [1, 2, 2**63]}]}, None, 400, "whole numbers"),
    ({"inputs": [{"name": "ids", "shape": [1, 3], "datatype": "INT64",
                  "data": [1, 2, 3], "parameters": []}]}, None, 400, "'parameters'"),
    ({"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32",
                  "data": [1e39] * 6}]}, None, 400, "range"),
    ({"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32",
                  "data": [None] * 6}]}, None, 400, "FP32 numbers"),
    ({"inputs": [{"name": "flag", "shape": [1, 1], "datatype": "BOOL", "data": [2]}]},
     None, 400, "true or false"),
    ({"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0] * 6}]},
     None, 400, "missing input(s): flag, ids"),
    ({"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32",
                  "parameters": {"binary_data_size": 24}}]},
     {"Inference-Header-Content-Length": "999999"}, 400, "body has only"),
    ({"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32",
                  "parameters": {"binary_data_size": 24}}]},
     {"Inference-Header-Content-Length": "-1"}, 400, "number of bytes"),
    ({"inputs": [{"name": "x", "shape": [100001, 6], "datatype": "FP32",
                  "data": [0]}]}, None, 413, "rows per request"),
    # hostile: a shape of 2**40 values with nothing behind it, nesting beyond any model
    ({"inputs": [{"name": "x", "shape": [1, 2**40], "datatype": "FP32",
                  "parameters": {"binary_data_size": 0}}]},
     {"Inference-Header-Content-Length": "all"}, 400, "binary_data_size says 0"),
    ({"inputs": [{"name": "x", "shape": [1, 2**40], "datatype": "FP32", "data": [0]}]},
     None, 400, "holds 1099511627776 values"),
    ("[" * 5000 + "]" * 5000, None, 400, "not valid JSON"),
    ({"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32",
                  "data": [[0, 1, 2], [3, 4]]}]}, None, 400, "equal length"),
]


async def test_v2_bad_requests(tfaas: TFaaSCaller, typed: tfmodels.Built) -> None:
    reply = await tfaas.upload("typed", typed.extra["tar"].read_bytes(), filename="t.tar.gz")
    assert reply.code == 200, reply.body
    for inputs, headers, status, words in BAD_REQUESTS:
        body = inputs.encode() if isinstance(inputs, str) else json.dumps(inputs).encode()
        if headers and headers.get("Inference-Header-Content-Length") == "all":
            headers = {"Inference-Header-Content-Length": str(len(body))}
        reply = await tfaas.call("POST", "v2/models/typed/infer", body, headers)
        assert reply.code == status, (inputs, reply.body)
        assert words in reply.json()["error"], (inputs, reply.body)
    # and the server keeps serving, counting the errors under the v2 endpoint
    assert (await tfaas.call("GET", "v2/models/typed/ready")).code == 200
    metrics = scrape((await tfaas.call("GET", "metrics")).body.decode())
    assert metric_value(metrics, "tfaas_requests_total", endpoint="v2", method="POST",
                        code="400") >= 1
    assert metric_value(metrics, "tfaas_requests_total", endpoint="v2", method="GET",
                        code="200") >= 1


async def test_v2_binary_edges(tfaas: TFaaSCaller, typed: tfmodels.Built) -> None:
    reply = await tfaas.upload("typed", typed.extra["tar"].read_bytes(), filename="t.tar.gz")
    assert reply.code == 200
    x = {"name": "x", "shape": [1, 6], "datatype": "FP32",
         "parameters": {"binary_data_size": 24}}
    ids = {"name": "ids", "shape": [1, 3], "datatype": "INT64", "data": [1, 2, 3]}
    flag = {"name": "flag", "shape": [1, 1], "datatype": "BOOL", "data": [True]}
    # a size that does not match the shape
    body, headers = v2_body({"inputs": [dict(x, parameters={"binary_data_size": 20}),
                                        ids, flag]}, b"\0" * 20)
    reply = await tfaas.call("POST", "v2/models/typed/infer", body, headers)
    assert reply.code == 400 and "binary_data_size says 20" in reply.json()["error"]
    # bytes left over after the tensors
    body, headers = v2_body({"inputs": [x, ids, flag]}, b"\0" * 28)
    reply = await tfaas.call("POST", "v2/models/typed/infer", body, headers)
    assert reply.code == 400 and "4 bytes after the tensors" in reply.json()["error"]
    # a BYTES tensor (length-prefixed elements) is parsed, and refused by the FP32 input
    elements = b"".join(struct.pack("<I", 2) + b"ab" for _ in range(6))
    body, headers = v2_body({"inputs": [
        dict(x, datatype="BYTES", parameters={"binary_data_size": len(elements)}), ids, flag,
    ]}, elements)
    reply = await tfaas.call("POST", "v2/models/typed/infer", body, headers)
    assert reply.code == 400 and "is FP32; the request sent BYTES" in reply.json()["error"]
    # unknown model and version, unknown output
    body, headers = v2_body({"inputs": [x, ids, flag]}, b"\0" * 24)
    reply = await tfaas.call("POST", "v2/models/nope/infer", body, headers)
    assert reply.code == 404 and "not found" in reply.json()["error"]
    reply = await tfaas.call("POST", "v2/models/typed/versions/9/infer", body, headers)
    assert reply.code == 404
    reply = await tfaas.call("POST", "v2/models/typed/infer", *v2_body(
        {"inputs": [x, ids, flag], "outputs": [{"name": "nope"}]}, b"\0" * 24))
    assert reply.code == 400 and "no output 'nope'" in reply.json()["error"]
    # the right request after all that
    reply = await tfaas.call("POST", "v2/models/typed/infer", body, headers)
    assert reply.code == 200, reply.body
