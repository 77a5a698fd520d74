"""The Python client (tfaas_jupyter.client) against a real, listening test server.

The server runs in the test's event loop, so every blocking client call goes
through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest
import tfmodels
from helpers import in_thread, seed_predict

from tfaas_jupyter.client.api import TFaaSClient, TFaaSClientError
from tfaas_jupyter.client.urls import TOKEN_ENV_VARS

pytestmark = pytest.mark.timeout(600)


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, tfmodels.N_IN)).astype(np.float32)


# -- no server needed ------------------------------------------------------------


def test_connection_refused_is_a_client_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = TFaaSClient(f"http://127.0.0.1:{port}/tfaas", timeout=10)
    with pytest.raises(TFaaSClientError) as info:
        c.models()
    assert info.value.status is None
    assert "connection refused" in info.value.message


class _Capture(BaseHTTPRequestHandler):
    """Keeps each request body; answers the next canned reply (else one 0 per row)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        server: Any = self.server
        server.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        values = json.loads(server.bodies[-1])["values"]
        zeros = b"[[0]" + b",[0]" * (len(values) - 1) + b"]" if isinstance(values[0], list) \
            else b"[0]"
        reply = server.replies.pop(0) if server.replies else zeros
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def capture() -> Iterator[tuple[TFaaSClient, Any]]:
    """A client of a local HTTP server that records the bodies it is sent."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    httpd.bodies, httpd.replies = [], []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    with TFaaSClient(f"http://127.0.0.1:{httpd.server_address[1]}/", token="", timeout=30) as c:
        yield c, httpd
    httpd.shutdown()
    httpd.server_close()


A, B = tfmodels.BIG_IDS  # 1700000001 (float32 rounds it), 2**53 + 1 (float64 rounds it)


def _frame(columns: dict[str, Any]) -> Any:
    import pandas as pd

    return pd.DataFrame(columns)


# (data, the "values" bytes that must be sent, the keys sent)
SENT = [
    ([A, B], b"[1700000001,9007199254740993]", None),
    ((A, B), b"[1700000001,9007199254740993]", None),
    ([[A, B], [1, 2]], b"[[1700000001,9007199254740993],[1,2]]", None),
    (np.array([A, B]), b"[1700000001,9007199254740993]", None),
    (np.array([[A, B]], dtype=np.int64), b"[[1700000001,9007199254740993]]", None),
    (np.array([[A, 7]], dtype=np.int64).T, b"[[1700000001],[7]]", None),  # Fortran order
    (np.array([3, -4], dtype=np.int32), b"[3,-4]", None),
    (np.array([2**64 - 1], dtype=np.uint64), b"[18446744073709551615]", None),
    (np.array([True, False]), b"[1,0]", None),
    ([np.int64(B), np.float64(0.5)], b"[9007199254740993,0.5]", None),
    # a row mixing ints and floats keeps each value as given
    ([A, 0.5, B], b"[1700000001,0.5,9007199254740993]", None),
    ([[A, 0.5], [B, 1.0]], b"[[1700000001,0.5],[9007199254740993,1.0]]", None),
    ([True, 2, 0.25], b"[1,2,0.25]", None),
    # floats in their own precision: float64 is not squeezed to float32
    ([0.1, 1 / 3], b"[0.1,0.3333333333333333]", None),
    (np.array([0.1, 1 / 3]), b"[0.1,0.3333333333333333]", None),
    (np.array([0.1, 1 / 3], dtype=np.float32), b"[0.1,0.33333334]", None),
    (np.array([0.5], dtype=np.float16), b"[0.5]", None),
    # dicts: one row, or columns
    ({"a": B, "b": 0.5}, b"[9007199254740993,0.5]", ["a", "b"]),
    ({"a": np.array([A, B]), "b": np.array([1, 2], dtype=np.int32)},
     b"[[1700000001,1],[9007199254740993,2]]", ["a", "b"]),
    ({"a": np.array([A, B]), "b": [0.5, 1.5]},
     b"[[1700000001,0.5],[9007199254740993,1.5]]", ["a", "b"]),
    ({"f": np.array([0.5, 0.25], dtype=np.float32), "d": np.array([0.1, 0.2])},
     b"[[0.5,0.1],[0.25,0.2]]", ["f", "d"]),
]
FRAMES = [
    # pandas: an int column stays integers beside a float column
    (lambda: _frame({"id": [A, B], "w": [0.5, 0.25]}),
     b"[[1700000001,0.5],[9007199254740993,0.25]]", ["id", "w"]),
    (lambda: _frame({"id": [A, B], "n": [1, 2]}),
     b"[[1700000001,1],[9007199254740993,2]]", ["id", "n"]),
    (lambda: _frame({"x": [0.1, 0.2], "y": [1 / 3, 2.0]}),
     b"[[0.1,0.3333333333333333],[0.2,2.0]]", ["x", "y"]),
    (lambda: _frame({"id": [A, B], "n": [1, 2]}).iloc[1],  # a Series: one row
     b"[9007199254740993,2]", ["id", "n"]),
    (lambda: _frame({"id": [A, B]})["id"], b"[1700000001,9007199254740993]", ["0", "1"]),
]


@pytest.mark.parametrize(("data", "values", "keys"), SENT + FRAMES)
def test_numbers_leave_exactly_as_given(capture, data: Any, values: bytes,
                                        keys: list[str] | None) -> None:
    client, httpd = capture
    if callable(data):
        data = data()
    client.predict("m", data)
    doc = json.loads(httpd.bodies[-1])  # Python's json keeps integers exact
    assert b'"values":' + values in httpd.bodies[-1]
    assert doc["values"] == json.loads(values) and doc.get("keys") == keys
    assert doc["model"] == "m"


@pytest.mark.parametrize("data", [
    [2**64], [-(2**63) - 1], [[1, 2], [3]], [[[1.0]]], [], [[]], [1, [2]], ["1"],
    np.array([1 + 2j]), np.zeros((0, 3)), np.zeros((1, 1, 1)), {"a": 1, "b": [1, 2]},
    np.array(["a"]), 3,
])
def test_what_cannot_be_sent_exactly_is_refused_before_sending(capture, data: Any) -> None:
    client, httpd = capture
    with pytest.raises(ValueError):
        client.predict("m", data)
    assert httpd.bodies == []


def test_proto_refuses_integers_float32_rounds(capture) -> None:
    client, httpd = capture
    with pytest.raises(ValueError, match="float32"):
        client.predict_proto("m", np.array([A]))  # /proto carries float32 only
    assert httpd.bodies == []


@pytest.mark.parametrize(("reply", "want", "dtype"), [
    (b"[1700000001,9007199254740993]", [A, B], np.int64),
    (b"[[1,2],[3,9007199254740993]]", [[1, 2], [3, B]], np.int64),
    (b"[18446744073709551615]", [2**64 - 1], np.uint64),
    (b"[1,0.5]", [1.0, 0.5], np.float64),
    (b"[0.1,0.3333333333333333]", [0.1, 1 / 3], np.float64),
])
def test_answers_keep_their_type(capture, reply: bytes, want: list, dtype: type) -> None:
    client, httpd = capture
    httpd.replies.append(reply)
    got = client.predict("m", [[1], [2]] if isinstance(want[0], list) else [1])
    assert got.dtype == dtype
    assert got.tolist() == want
    # a float32 output, sent in its shortest form, is the model's float32 exactly
    httpd.replies.append(b"[0.70056725]")
    assert client.predict("m", [1]).astype(np.float32)[0] == np.float32(0.70056725)
    httpd.replies.append(b'["a"]')
    with pytest.raises(TFaaSClientError, match="not rows of numbers"):
        client.predict("m", [1])


# -- against the live server -------------------------------------------------------


async def test_seed_model_every_data_form(client: TFaaSClient, seed_dir: Path) -> None:
    answer = await in_thread(client.upload, "vk", seed_dir / "model.pb",
                             params=seed_dir / "params.json", labels=seed_dir / "labels.txt")
    assert answer["name"] == "vk" and answer["version"] == 1 and answer["format"] == "graphdef"
    doc = json.loads((seed_dir / "input.json").read_text())
    keys, values = doc["keys"], doc["values"]

    one = await in_thread(client.predict, "vk", values)
    assert one.shape == (1,) and one.dtype == np.float64  # a float output: float64
    np.testing.assert_allclose(one, seed_predict(values), rtol=1e-5)

    many = await in_thread(client.predict, "vk", [values, values, values])
    assert many.shape == (3, 1)
    np.testing.assert_allclose(many[:, 0], one[0], rtol=1e-6)

    as_dict = await in_thread(client.predict, "vk", dict(zip(keys, values)))
    np.testing.assert_allclose(as_dict, one, rtol=1e-6)
    columns = {k: [v, v] for k, v in zip(keys, values)}
    np.testing.assert_allclose(await in_thread(client.predict, "vk", columns), many[:2], rtol=1e-6)

    arr = np.asarray(values, dtype=np.float64)
    np.testing.assert_allclose(await in_thread(client.predict, "vk", arr), one, rtol=1e-6)
    np.testing.assert_allclose(await in_thread(client.predict, "vk", arr[None, :]), one[None, :],
                               rtol=1e-6)

    frame = pd.DataFrame([values, values], columns=keys)
    got = await in_thread(client.predict, "vk", frame)
    assert got.shape == (2, 1)
    np.testing.assert_allclose(got[:, 0], one[0], rtol=1e-6)
    np.testing.assert_allclose(await in_thread(client.predict, "vk", frame.iloc[0]), one, rtol=1e-6)

    # protobuf, as the C++ client: one Class per output, labelled from labels.txt
    proto = await in_thread(client.predict_proto, "vk", values, keys)
    assert len(proto) == 1 and proto[0][0] == "signal"
    assert proto[0][1] == pytest.approx(float(one[0]), rel=1e-6)

    # no model named: the last uploaded through the form is the default
    np.testing.assert_allclose(await in_thread(client.predict, None, values), one, rtol=1e-6)


async def test_listing_params_status_and_versions(client: TFaaSClient, built) -> None:
    g = built["graphdef"]
    first = await in_thread(client.upload, "tiny", g.path, params=g.extra["params"],
                            labels=["signal"])
    second = await in_thread(client.upload, "tiny", g.path.read_bytes(),
                             params={**g.params, "name": "tiny", "description": "second"})
    assert (first["version"], second["version"]) == (1, 2)

    models = await in_thread(client.models)
    assert [m["name"] for m in models] == ["tiny"]
    assert models[0]["versions"] == [1, 2]
    detail = await in_thread(client.model, "tiny")
    assert detail["version"] == 2 and len(detail["version_details"]) == 2
    assert (await in_thread(client.params, "tiny"))["description"] == "second"
    assert "description" not in await in_thread(client.params, "tiny", 1)

    x = rows(4)
    want = g.reference([x])[0]
    np.testing.assert_allclose(await in_thread(client.predict, "tiny", x), want, rtol=1e-5)
    np.testing.assert_allclose(await in_thread(client.predict, "tiny", x, version=1), want,
                               rtol=1e-5)

    status = await in_thread(client.status)
    assert "tiny" in status["models_on_disk"] and "worker" in status

    gone = await in_thread(client.delete, "tiny", 2)
    assert gone["deleted_versions"] == [2]
    assert (await in_thread(client.model, "tiny"))["versions"] == [1]
    await in_thread(client.delete, "tiny")
    assert await in_thread(client.models) == []

    with pytest.raises(TFaaSClientError) as info:
        await in_thread(client.predict, "tiny", x)
    assert info.value.status == 404 and "tiny" in info.value.message
    with pytest.raises(TFaaSClientError) as info:
        await in_thread(client.params, "nope")
    assert info.value.status == 404


async def test_upload_every_model_form(client: TFaaSClient, built, tmp_path: Path) -> None:
    x = rows(3, seed=5)
    export = built["keras_export"]
    cases = {
        "tar": export.extra["tar_top"],
        "zip": export.extra["zip_flat"],
        "folder": export.path,  # a SavedModel folder: packed by the client
    }
    for name, model in cases.items():
        answer = await in_thread(client.upload, name, model)
        assert answer["format"] == "savedmodel", name
        got = await in_thread(client.predict, name, x)
        np.testing.assert_allclose(got, export.reference([x])[0], rtol=1e-5, atol=1e-6)

    kfile = built["keras_file"]
    assert (await in_thread(client.upload, "kfile", kfile.path))["format"] == "keras"
    np.testing.assert_allclose(await in_thread(client.predict, "kfile", x),
                               kfile.reference([x])[0], rtol=1e-5, atol=1e-6)

    # a live Keras model object, exported and packed by the client
    live = tfmodels._tiny_keras(seed=11)
    answer = await in_thread(client.upload, "live", live, labels=["a", "b"])
    assert answer["format"] == "savedmodel" and answer["labels"] == ["a", "b"]
    want = np.asarray(live(x, training=False))
    np.testing.assert_allclose(await in_thread(client.predict, "live", x), want, rtol=1e-5,
                               atol=1e-6)

    with pytest.raises(FileNotFoundError):
        await in_thread(client.upload, "bad", tmp_path / "missing.pb")
    (tmp_path / "junk.pb").write_bytes(b"this is no graph")
    with pytest.raises(TFaaSClientError) as info:
        await in_thread(client.upload, "bad", tmp_path / "junk.pb",
                        params={"inputNode": "x", "outputNode": "y"})
    assert info.value.status == 400 and info.value.message


async def test_image_bytes_path_and_pil(client: TFaaSClient, tmp_path: Path) -> None:
    from PIL import Image

    path, model = tfmodels.make_image_keras(tmp_path, classes=3, seed=3)
    await in_thread(client.upload, "img", path, labels=["red", "green", "blue"])

    pixels = np.random.default_rng(1).integers(0, 255, size=(4, 4, 3)).astype(np.uint8)
    picture = Image.fromarray(pixels)
    png = tmp_path / "x.png"
    picture.save(png)
    probs = np.asarray(model(pixels[None].astype(np.float32), training=False))[0]
    best = ["red", "green", "blue"][int(np.argmax(probs))]
    for image in (png, png.read_bytes(), picture):
        answer = await in_thread(client.image, "img", image)
        assert answer["labels"][0]["label"] == best
        assert answer["labels"][0]["probability"] == pytest.approx(float(probs.max()), rel=1e-4)
    assert (await in_thread(client.image, "img", png))["filename"] == str(png)


async def test_auth_and_error_messages(client: TFaaSClient, tfaas_url: str,
                                       seed_dir: Path) -> None:
    anonymous = TFaaSClient(tfaas_url, token="", timeout=60)
    with pytest.raises(TFaaSClientError) as info:
        await in_thread(anonymous.models)
    assert info.value.status == 403
    wrong = TFaaSClient(tfaas_url, token="wrong", timeout=60)
    with pytest.raises(TFaaSClientError) as info:
        await in_thread(wrong.status)
    assert info.value.status == 403

    with pytest.raises(TFaaSClientError) as info:
        await in_thread(client.delete, "ghost")
    assert info.value.status == 404 and "ghost" in info.value.message

    await in_thread(client.upload, "vk", seed_dir / "model.pb", params=seed_dir / "params.json")
    with pytest.raises(TFaaSClientError) as info:
        await in_thread(client.predict, "vk", [1.0, 2.0])
    assert info.value.status == 400 and "42" in info.value.message
    with pytest.raises(ValueError):
        await in_thread(client.predict, "vk", [[[1.0]]])

    # the kept-alive connection survives errors and is reused: many calls, one socket
    for _ in range(20):
        await in_thread(client.predict, "vk", np.zeros(42))
    assert len(client._idle) == 1


async def test_upload_progress(client: TFaaSClient, seed_dir: Path) -> None:
    seen: list[tuple[int, int]] = []
    await in_thread(client.upload, "vk", seed_dir / "model.pb", params=seed_dir / "params.json",
                    progress=lambda sent, total: seen.append((sent, total)))
    total = seen[-1][1]
    assert seen[0][0] == 0 and seen[-1][0] == total > (seed_dir / "model.pb").stat().st_size
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)


async def test_an_address_copied_from_the_browser(jp_fetch, jp_http_port: int,
                                                  jp_base_url: str, jp_serverapp,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A JupyterLab notebook's address with its ?token= is all the client needs."""
    for name in TOKEN_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    token = jp_serverapp.identity_provider.token
    root = f"http://localhost:{jp_http_port}{jp_base_url}"
    with TFaaSClient(f"{root}lab/tree/dir/demo.ipynb?token={token}", timeout=60) as lab:
        assert (lab.url, lab.token) == (root + "tfaas/", token)
        assert await in_thread(lab.models) == []
    monkeypatch.setenv("TFAAS_TOKEN", "wrong")  # the URL's token comes before the environment
    with TFaaSClient(f"{root}tree?token={token}", timeout=60) as tree:
        assert await in_thread(tree.models) == []


# -- int64 in, int64 out ----------------------------------------------------------------


async def test_int64_ids_reach_the_model_exactly(client: TFaaSClient, built) -> None:
    """What the server receives: the model's low bits of 1700000001 are 257 (float32 would
    have sent 1700000000: 256); small outputs, so exact whatever the output encoding."""
    ids = built["int64_ids"]
    await in_thread(client.upload, "ids", ids.path)
    x = np.array([[A, 2**40 + 3], [-5, 7]], dtype=np.int64)
    low_bits = ids.reference([x])[0]
    assert low_bits[0, 0] == 257
    np.testing.assert_array_equal((await in_thread(client.predict, "ids", x))[:, :2], low_bits)
    python_row = await in_thread(client.predict, "ids", [A, 2**40 + 3])
    np.testing.assert_array_equal(python_row[:2], low_bits[0])
    # a fraction beside an integer leaves as it is: the server's 400 for an int64 input
    with pytest.raises(TFaaSClientError) as info:
        await in_thread(client.predict, "ids", [A, 0.5])
    assert info.value.status == 400 and "whole numbers" in info.value.message


async def test_int64_round_trip_exact(client: TFaaSClient, built) -> None:
    """int64 in and out, above float32's and float64's exact integers (needs a server
    that answers int64 outputs as JSON integers)."""
    ids = built["int64_ids"]
    await in_thread(client.upload, "ids", ids.path)
    x = np.array([[A, B], [-(2**62) - 1, 2**62 + 1]], dtype=np.int64)
    want = np.concatenate(ids.reference([x]), axis=1)
    got = await in_thread(client.predict, "ids", x)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    one = await in_thread(client.predict, "ids", [A, B])
    assert one.dtype == np.int64 and one.tolist() == [257, 1, A + 1, B + 1]
