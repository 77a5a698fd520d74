"""TensorFlow Serving's REST API under tfaas/v1, with the request and response bodies of
TF Serving's REST API document, against real models and TensorFlow in process.

Requests go out with the ``:`` of ``:predict`` as TF Serving clients send it (not
percent-encoded as jp_fetch would).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tfmodels
from helpers import Reply, TFaaSCaller, check_answer_schema, metric_value, scrape
from tornado.httpclient import AsyncHTTPClient

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="session")
def tfs_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tfmodels.Built]:
    root = tmp_path_factory.mktemp("tfs")
    return {
        "half": tfmodels.make_half_plus_three(root / "half"),
        "signals": tfmodels.make_signal_sensor(root / "signals"),
        "typed": tfmodels.make_typed_savedmodel(root / "typed"),
    }


@pytest.fixture
def v1(jp_http_port: int, jp_base_url: str, jp_auth_header: dict[str, str]):
    """Call ``{base_url}tfaas/v1/...`` with the path exactly as given."""
    client = AsyncHTTPClient()

    async def call(method: str, path: str, doc: Any = None, raw: bytes | None = None) -> Reply:
        body = raw if raw is not None else (None if doc is None else json.dumps(doc).encode())
        response = await client.fetch(
            f"http://localhost:{jp_http_port}{jp_base_url}tfaas/v1/{path}", method=method,
            body=body, headers=jp_auth_header, raise_error=False, request_timeout=180,
        )
        return Reply(response.code, response.headers, response.body)

    return call


async def upload(tfaas: TFaaSCaller, name: str, built: tfmodels.Built) -> int:
    archive: Path = built.extra["tar"]
    reply = await tfaas.upload(name, archive.read_bytes(), filename=archive.name)
    assert reply.code == 200, reply.body
    return reply.json()["version"]


# The document's examples (TF Serving REST API: "Predict API", "Example").
HALF_REQUEST = {"instances": [1.0, 2.0, 5.0]}
HALF_RESPONSE = {"predictions": [3.5, 4.0, 5.5]}
ROW_REQUEST = {
    "signature_name": "serving_default",
    "instances": [
        {"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
        {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]},
    ],
}
COLUMNAR_REQUEST = {
    "inputs": {
        "tag": ["foo", "bar"],
        "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
        "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]],
    }
}
B64_REQUEST = {"instances": [{"b64": "aW1hZ2UgYnl0ZXM="}]}


async def test_documented_bodies(tfaas: TFaaSCaller, v1, tfs_models) -> None:
    assert await upload(tfaas, "half_plus_three", tfs_models["half"]) == 1
    assert await upload(tfaas, "signals", tfs_models["signals"]) == 1

    # the end-to-end example: unnamed row format, one output
    reply = await v1("POST", "models/half_plus_three:predict", HALF_REQUEST)
    assert reply.code == 200, reply.body
    assert reply.json() == HALF_RESPONSE
    check_answer_schema(reply.json(), "/v1/models/{name}:predict", "post")
    reply = await v1("POST", "models/half_plus_three/versions/1:predict", {"inputs": [1.0, 7.0]})
    assert reply.json() == {"outputs": [3.5, 6.5]}

    # model status and metadata, as the document shows them
    reply = await v1("GET", "models/half_plus_three")
    assert reply.code == 200
    assert reply.json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]}
    check_answer_schema(reply.json(), "/v1/models/{name}")
    reply = await v1("GET", "models/half_plus_three/versions/1/metadata")
    assert reply.code == 200
    meta = reply.json()
    check_answer_schema(meta, "/v1/models/{name}/versions/{version}/metadata")
    assert meta["model_spec"] == {"name": "half_plus_three", "signature_name": "", "version": "1"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["inputs"]["x"] == {"dtype": "DT_FLOAT", "name": "x:0", "tensor_shape": {
        "dim": [{"size": "-1", "name": ""}], "unknown_rank": False}}
    assert set(sig["outputs"]) == {"y"}

    # the row and columnar examples: "tag" is a string input, which no model here has
    expected_peak, expected_total = tfs_models["signals"].reference([
        np.array([r["signal"] for r in ROW_REQUEST["instances"]], np.float32),
        np.array([r["sensor"] for r in ROW_REQUEST["instances"]], np.float32),
    ])
    for doc in (ROW_REQUEST, COLUMNAR_REQUEST):
        reply = await v1("POST", "models/signals:predict", doc)
        assert reply.code == 400, reply.body
        assert "unknown input(s): tag" in reply.json()["error"]
    row = {**ROW_REQUEST, "instances": [
        {k: v for k, v in r.items() if k != "tag"} for r in ROW_REQUEST["instances"]]}
    reply = await v1("POST", "models/signals:predict", row)
    assert reply.code == 200, reply.body
    predictions = reply.json()["predictions"]
    assert [sorted(p) for p in predictions] == [["peak", "total"]] * 2
    assert np.array_equal(np.array([p["total"] for p in predictions], np.float32),
                          expected_total)
    assert np.array_equal(np.array([p["peak"] for p in predictions], np.float32), expected_peak)
    columnar = {"inputs": {k: v for k, v in COLUMNAR_REQUEST["inputs"].items() if k != "tag"}}
    reply = await v1("POST", "models/signals/versions/1:predict", columnar)
    assert reply.code == 200, reply.body
    outputs = reply.json()["outputs"]
    assert np.array_equal(np.array(outputs["total"], np.float32), expected_total)
    assert np.array_equal(np.array(outputs["peak"], np.float32), expected_peak)

    # bytes as {"b64": ...}: a clear 400, since no input here takes strings
    reply = await v1("POST", "models/half_plus_three:predict", B64_REQUEST)
    assert reply.code == 400
    assert "b64" in reply.json()["error"] and "DT_STRING" in reply.json()["error"]


async def test_typed_values_stay_exact(tfaas: TFaaSCaller, v1, tfs_models) -> None:
    typed = tfs_models["typed"]
    await upload(tfaas, "typed", typed)
    await upload(tfaas, "typed", typed)
    rng = np.random.default_rng(5)
    values = {
        "ids": np.array([[2**53 + 1, 2**62 + 3, -(2**63)], [1, 2, 3]], np.int64),
        "x": rng.normal(size=(2, tfmodels.N_IN)).astype(np.float32),
        "flag": np.array([[True], [False]]),
    }
    flag_not, ids_next, score = typed.reference([values])
    columnar = {"inputs": {k: v.tolist() for k, v in values.items()}}
    reply = await v1("POST", "models/typed/versions/2:predict", columnar)
    assert reply.code == 200, reply.body
    outputs = reply.json()["outputs"]
    assert outputs["ids_next"] == ids_next.tolist()  # exact 64-bit integers
    assert outputs["flag_not"] == flag_not.tolist()
    assert np.array_equal(np.array(outputs["score"], np.float32), score)
    rows = {"instances": [{k: v[i].tolist() for k, v in values.items()} for i in range(2)]}
    reply = await v1("POST", "models/typed:predict", rows)
    assert reply.code == 200, reply.body
    assert [p["ids_next"] for p in reply.json()["predictions"]] == ids_next.tolist()
    status = (await v1("GET", "models/typed")).json()
    assert [s["version"] for s in status["model_version_status"]] == ["1", "2"]
    assert (await v1("GET", "models/typed/versions/2")).json()["model_version_status"][0][
        "version"] == "2"


async def test_bad_requests(tfaas: TFaaSCaller, v1, tfs_models) -> None:
    await upload(tfaas, "typed", tfs_models["typed"])
    one = {"ids": [[1, 2, 3]], "x": [[0.0] * tfmodels.N_IN], "flag": [[True]]}
    cases: list[tuple[str, Any, int, str]] = [
        ("models/typed:predict", b"{", 400, "not valid JSON"),
        ("models/typed:predict", [1, 2], 400, "JSON object"),
        ("models/typed:predict", {"instances": [], "inputs": {}}, 400, "exactly one of"),
        ("models/typed:predict", {"instances": []}, 400, "non-empty list"),
        ("models/typed:predict", {"instances": [[1, 2, 3]]}, 400, "each instance must be"),
        ("models/typed:predict", {"inputs": [[1, 2, 3]]}, 400, "must be an object naming"),
        ("models/typed:predict", {"inputs": {**one, "ids": [[1, 2.5, 3]]}}, 400,
         "whole numbers"),
        ("models/typed:predict", {"inputs": {**one, "extra": [1]}}, 400,
         "unknown input(s): extra"),
        ("models/typed:predict", {"inputs": one, "signature_name": "other"}, 400,
         "signature_name 'other'"),
        ("models/typed:predict", {"instances": [{**{k: v[0] for k, v in one.items()}}, [1]]},
         400, "mixes named"),
        ("models/nope:predict", {"inputs": one}, 404, "not found"),
        ("models/typed/versions/9:predict", {"inputs": one}, 404, "no version 9"),
        ("models/typed/versions/9/metadata", None, 404, "no version 9"),
        ("models/nope", None, 404, "not found"),
    ]
    for path, doc, status, words in cases:
        method = "POST" if path.endswith(":predict") else "GET"
        raw = doc if isinstance(doc, bytes) else None
        reply = await v1(method, path, None if raw else doc, raw)
        assert reply.code == status, (path, doc, reply.body)
        assert words in reply.json()["error"], (path, doc, reply.body)
    reply = await v1("POST", "models/typed:predict", {"inputs": one})
    assert reply.code == 200, reply.body
    metrics = scrape((await tfaas.call("GET", "metrics")).body.decode())
    assert metric_value(metrics, "tfaas_requests_total", endpoint="v1", method="POST",
                        code="400") >= 1
    assert metric_value(metrics, "tfaas_requests_total", endpoint="v1", method="GET",
                        code="404") >= 1
