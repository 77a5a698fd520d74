"""The TFaaS API of the server extension against a real Jupyter server and real TF models."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import tfmodels
from helpers import TFaaSCaller, seed_predict

from tfaas_jupyter import tfaas_pb2
from tfaas_jupyter.client.forms import encode_multipart

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="session")
def image_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A tiny CNN over 8x8 RGB images with three labelled classes, as a .keras file."""
    import keras

    keras.utils.set_random_seed(7)
    inp = keras.Input(shape=(8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inp, out)
    path = tmp_path_factory.mktemp("img") / "cnn.keras"
    model.save(str(path))
    return path, model


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def rows(n: int, width: int = tfmodels.N_IN, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, width)).astype(np.float32)


# -- the seed's workflow ---------------------------------------------------------


async def test_seed_upload_and_predict(tfaas: TFaaSCaller, seed_dir: Path) -> None:
    reply = await tfaas.upload_dir(seed_dir, "vk")
    assert reply.code == 200, reply.body
    assert reply.json()["version"] == 1
    doc = json.loads((seed_dir / "input.json").read_text())
    reply = await tfaas.call("POST", "json", (seed_dir / "input.json").read_bytes())
    assert reply.code == 200, reply.body
    answer = reply.json()
    assert isinstance(answer, list) and len(answer) == 1
    np.testing.assert_allclose(answer, seed_predict(doc["values"]), rtol=1e-5)
    # the same through /predict/json, and many rows in one request
    reply = await tfaas.call("POST", "predict/json", json.dumps(
        {"model": "vk", "values": [doc["values"], doc["values"]]}).encode())
    # TensorFlow's kernels may round the last float32 bit differently by batch size
    # (oneDNN's and Eigen's blockings differ by CPU), so rows are compared to 1e-6
    np.testing.assert_allclose(reply.json(), [answer, answer], rtol=1e-6)


async def test_formats_equal_tensorflow_in_process(
    tfaas: TFaaSCaller, built: dict[str, tfmodels.Built]
) -> None:
    x = rows(5)
    # frozen graph (form upload with params naming the nodes)
    g = built["graphdef"]
    assert (await tfaas.upload_dir(g.path.parent, "graph")).code == 200
    # SavedModel archives: tar.gz and zip, foldered and flat; no params, no labels
    ke = built["keras_export"]
    for tag in ("tar_top", "tar_flat", "zip_top", "zip_flat"):
        archive = ke.extra[tag]
        reply = await tfaas.upload(f"sm_{tag}", archive.read_bytes(), filename=archive.name)
        assert reply.code == 200, reply.body
        assert reply.json()["format"] == "savedmodel"
    # a .keras file
    kf = built["keras_file"]
    reply = await tfaas.upload("kfile", kf.path.read_bytes(), filename="tiny.keras")
    assert reply.code == 200 and reply.json()["format"] == "keras", reply.body
    for name, b in [("graph", g), ("sm_tar_top", ke), ("sm_zip_flat", ke), ("kfile", kf)]:
        expected = b.reference([x])[0].reshape(len(x), -1)
        reply = await tfaas.predict({"model": name, "values": x.tolist()})
        assert reply.code == 200, reply.body
        np.testing.assert_allclose(np.array(reply.json()), expected, rtol=1e-5, atol=1e-6)
        one = await tfaas.predict({"model": name, "values": x[0].tolist()})
        np.testing.assert_allclose(np.array(one.json()), expected[0], rtol=1e-5, atol=1e-6)


async def test_multi_input_savedmodel(tfaas: TFaaSCaller, built, tmp_path: Path) -> None:
    mod = built["module"]
    archive = tmp_path / "module.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(mod.path, arcname="module")
    reply = await tfaas.upload("multi", archive.read_bytes(), filename="module.tar.gz")
    assert reply.code == 200, reply.body
    inputs = [i["name"] for i in reply.json()["inputs"]]
    assert inputs == ["a_bias", "b_feat"]  # sorted by name: values fill them in this order
    x = rows(3)
    bias = np.array([[0.5], [-1.0], [2.0]], dtype=np.float32)
    reply = await tfaas.predict({"model": "multi", "values": np.hstack([bias, x]).tolist()})
    assert reply.code == 200, reply.body
    prob, z = mod.reference([bias, x])
    np.testing.assert_allclose(np.array(reply.json()), np.hstack([prob, z]), rtol=1e-5)


async def test_keys_are_mapped_by_name_when_params_list_them(
    tfaas: TFaaSCaller, built
) -> None:
    g = built["graphdef"]
    keys = [f"f{i}" for i in range(tfmodels.N_IN)]
    params = {**json.loads((g.path.parent / "params.json").read_text()), "keys": keys}
    params["name"] = "keyed"
    reply = await tfaas.upload("keyed", g.path.read_bytes(), params=params)
    assert reply.code == 200, reply.body
    x = rows(1)[0]
    expected = g.reference([x[None, :]])[0][0]
    shuffled = list(reversed(range(tfmodels.N_IN)))
    reply = await tfaas.predict(
        {"model": "keyed", "keys": [keys[i] for i in shuffled], "values": x[shuffled].tolist()}
    )
    np.testing.assert_allclose(reply.json(), expected, rtol=1e-5)
    missing = await tfaas.predict({"model": "keyed", "keys": keys[:-1], "values": x[:-1].tolist()})
    assert missing.code == 400 and "missing key" in missing.json()["error"]
    unknown = await tfaas.predict(
        {"model": "keyed", "keys": [*keys[:-1], "bogus"], "values": x.tolist()}
    )
    assert unknown.code == 400 and "unknown key" in unknown.json()["error"]
    # without params keys, keys are ignored and order counts (as the original)
    await tfaas.upload_dir(g.path.parent, "plain")
    reply = await tfaas.predict({"model": "plain", "keys": ["a"] * 6, "values": x.tolist()})
    np.testing.assert_allclose(reply.json(), expected, rtol=1e-5)


# -- proto -----------------------------------------------------------------------


async def test_proto_round_trip(tfaas: TFaaSCaller, seed_dir: Path) -> None:
    await tfaas.upload_dir(seed_dir, "vk")
    doc = json.loads((seed_dir / "input.json").read_text())
    expected = (await tfaas.predict(doc)).json()
    row = tfaas_pb2.Row(key=doc["keys"], value=doc["values"], model="vk")
    # libcurl's default content type, as the C++ client sends it
    reply = await tfaas.call("POST", "proto", row.SerializeToString(),
                             {"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.code == 200, reply.body
    predictions = tfaas_pb2.Predictions.FromString(reply.body)
    assert [c.label for c in predictions.prediction] == ["signal"]
    np.testing.assert_allclose([c.probability for c in predictions.prediction], expected)
    # unpacked floats must be understood too
    unpacked = b"".join(
        b"\x15" + np.float32(v).tobytes() for v in doc["values"]
    ) + b"\x1a\x02vk"
    reply = await tfaas.call("POST", "predict/proto", unpacked)
    assert reply.code == 200, reply.body
    got = tfaas_pb2.Predictions.FromString(reply.body).prediction[0].probability
    np.testing.assert_allclose(got, expected[0], rtol=1e-6)


# -- image -----------------------------------------------------------------------


async def test_image_top_labels(tfaas: TFaaSCaller, image_model, tmp_path: Path) -> None:
    path, model = image_model
    reply = await tfaas.upload("cnn", path.read_bytes(), filename="cnn.keras",
                               labels="cat\ndog\nhiggs\n")
    assert reply.code == 200, reply.body
    pixels = np.random.default_rng(3).integers(0, 255, size=(8, 8, 3))
    body, ctype = encode_multipart(
        {"model": "cnn"}, {"image": ("/path/file.png", png_bytes(pixels), "image/png")}
    )
    reply = await tfaas.call("POST", "image", body, {"Content-Type": ctype})
    assert reply.code == 200, reply.body
    answer = reply.json()
    assert answer["filename"] == "/path/file.png"
    expected = np.asarray(model(pixels[None].astype(np.float32)))[0]
    order = np.argsort(-expected)
    assert [item["label"] for item in answer["labels"]] == [
        ["cat", "dog", "higgs"][i] for i in order
    ]
    np.testing.assert_allclose([i["probability"] for i in answer["labels"]], expected[order],
                               rtol=1e-5)
    # a bigger jpg is resized to the model's 8x8 input
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(buf, format="JPEG")
    body, ctype = encode_multipart(
        {"model": "cnn"}, {"image": ("big.jpg", buf.getvalue(), "image/jpeg")}
    )
    reply = await tfaas.call("POST", "predict/image", body, {"Content-Type": ctype})
    assert reply.code == 200, reply.body
    # not an image
    body, ctype = encode_multipart(
        {"model": "cnn"}, {"image": ("x.png", b"not an image at all", "image/png")}
    )
    reply = await tfaas.call("POST", "image", body, {"Content-Type": ctype})
    assert reply.code == 400 and "Invalid image" in reply.json()["error"]
    body, ctype = encode_multipart({"model": "cnn"}, {})
    reply = await tfaas.call("POST", "image", body, {"Content-Type": ctype})
    assert reply.code == 400 and "image" in reply.json()["error"]


# -- upload variants -------------------------------------------------------------


async def test_original_base64_upload_and_bundle(
    tfaas: TFaaSCaller, seed_dir: Path, built, tmp_path: Path
) -> None:
    model = base64.encodebytes((seed_dir / "model.pb").read_bytes())
    reply = await tfaas.upload(
        "vk", model, params=json.loads((seed_dir / "params.json").read_text()),
        labels="signal\n", headers={"Content-Encoding": "base64"},
    )
    assert reply.code == 200, reply.body
    doc = json.loads((seed_dir / "input.json").read_text())
    assert (await tfaas.predict(doc)).code == 200
    # bundle: a gzip'd tarball whose top folder names the model
    ke = built["keras_export"]
    bundle = tmp_path / "bundle.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        tar.add(ke.path, arcname="bundled")
    reply = await tfaas.call("POST", "upload", bundle.read_bytes(),
                             {"Content-Encoding": "gzip",
                              "Content-Type": "application/octet-stream"})
    assert reply.code == 200, reply.body
    assert reply.json()["name"] == "bundled"
    x = rows(2)
    got = (await tfaas.predict({"model": "bundled", "values": x.tolist()})).json()
    np.testing.assert_allclose(got, ke.reference([x])[0], rtol=1e-5)


async def test_versions_and_delete(tfaas: TFaaSCaller, built) -> None:
    g, kf = built["graphdef"], built["keras_file"]
    assert (await tfaas.upload_dir(g.path.parent, "m")).json()["version"] == 1
    reply = await tfaas.upload("m", kf.path.read_bytes(), filename="m.keras")
    assert reply.json()["version"] == 2
    x = rows(1)
    latest = (await tfaas.predict({"model": "m", "values": x[0].tolist()})).json()
    assert len(latest) == 3  # the keras model has three outputs
    v1 = (await tfaas.predict({"model": "m", "version": 1, "values": x[0].tolist()})).json()
    assert len(v1) == 1
    detail = (await tfaas.call("GET", "models/m")).json()
    assert detail["versions"] == [1, 2]
    params = (await tfaas.call("GET", "params/m/1")).json()
    assert params["inputNode"] == "x"
    # delete one version by path, then the model with the original's form field
    assert (await tfaas.call("DELETE", "delete/m/2")).code == 200
    again = (await tfaas.predict({"model": "m", "values": x[0].tolist()})).json()
    np.testing.assert_allclose(again, v1)
    body, ctype = encode_multipart({"model": "m"})
    reply = await tfaas.call("DELETE", "delete", body, {"Content-Type": ctype})
    assert reply.code == 200, reply.body
    assert (await tfaas.call("GET", "models")).json() == []
    gone = await tfaas.predict({"model": "m", "values": x[0].tolist()})
    assert gone.code == 404 and "not found" in gone.json()["error"]
    assert (await tfaas.call("DELETE", "delete/m")).code == 404
    # a new upload after a delete never reuses a stale cached model
    reply = await tfaas.upload("m", kf.path.read_bytes(), filename="m.keras")
    assert reply.code == 200


async def test_models_params_status_index(tfaas: TFaaSCaller, seed_dir: Path) -> None:
    assert (await tfaas.call("GET", "models")).json() == []
    await tfaas.upload_dir(seed_dir, "vk")
    models = (await tfaas.call("GET", "models")).json()
    assert [m["name"] for m in models] == ["vk"]
    assert models[0]["inputNode"] == "dense_1_input"
    assert models[0]["inputs"][0]["shape"] == [None, 42]
    # the 2018 client listed models with POST {}
    assert (await tfaas.call("POST", "models", b"{}")).json() == models
    params = (await tfaas.call("GET", "params/vk")).json()
    assert params["outputNode"] == "output_node0" and params["name"] == "vk"
    # POST params makes a model the default for requests naming none
    assert (await tfaas.call("POST", "params", b'{"name": "vk"}')).code == 200
    doc = json.loads((seed_dir / "input.json").read_text())
    doc.pop("model")
    assert (await tfaas.predict(doc)).code == 200
    status = (await tfaas.call("GET", "status")).json()
    for key in ("CPU", "Load", "Memory", "Uptime", "getRequests", "postRequests", "NGo"):
        assert key in status
    assert status["tensorflow"]
    assert status["version"]
    assert status["models_on_disk"] == ["vk"]
    assert "vk" in status["models_loaded"]
    # the upload, GET params/vk, POST params naming vk, the prediction
    assert status["models"]["vk"]["requests"] == 4
    assert status["worker"]["state"] == "running"
    page = await tfaas.call("GET", "")
    assert page.code == 200 and b"vk" in page.body and b"<html" in page.body


async def test_upload_under_another_name_than_params_json(
    tfaas: TFaaSCaller, seed_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    """The form's name wins over params.json's (the stored params.json says so, the
    answer mentions it); a bundle keeps its folder's name."""
    params = json.loads((seed_dir / "params.json").read_text())
    assert params["name"] == "vk"
    model = (seed_dir / "model.pb").read_bytes()
    reply = await tfaas.upload("vk2", model, params=params, labels="signal\n")
    assert reply.code == 200, reply.body
    answer = reply.json()
    assert (answer["name"], answer["version"], answer["renamed_from"]) == ("vk2", 1, "vk")
    assert "'vk'" in answer["note"] and "'vk2'" in answer["note"]
    stored = json.loads((model_dir / "vk2" / "1" / "params.json").read_text())
    assert stored["name"] == "vk2" and stored["inputNode"] == params["inputNode"]
    assert (await tfaas.call("GET", "params/vk2")).json()["name"] == "vk2"
    assert [m["name"] for m in (await tfaas.call("GET", "models")).json()] == ["vk2"]
    doc = json.loads((seed_dir / "input.json").read_text())
    renamed = (await tfaas.predict({**doc, "model": "vk2"})).json()
    same = await tfaas.upload("vk", model, params=params, labels="signal\n")
    assert same.code == 200 and "renamed_from" not in same.json()
    assert renamed == (await tfaas.predict({**doc, "model": "vk"})).json()
    # a bundle: its folder names the model, whatever its params.json says
    folder = tmp_path / "bundled"
    folder.mkdir()
    for name in ("model.pb", "params.json", "labels.txt"):
        (folder / name).write_bytes((seed_dir / name).read_bytes())
    bundle = tmp_path / "bundle.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        tar.add(folder, arcname="bundled")
    reply = await tfaas.call("POST", "upload", bundle.read_bytes(),
                             {"Content-Type": "application/octet-stream"})
    assert reply.code == 200, reply.body
    assert (reply.json()["name"], reply.json()["renamed_from"]) == ("bundled", "vk")
    stored = json.loads((model_dir / "bundled" / "1" / "params.json").read_text())
    assert stored["name"] == "bundled"
    assert (await tfaas.predict({**doc, "model": "bundled"})).json() == renamed


async def test_the_page_shows_the_calls_that_fit_each_model(
    tfaas: TFaaSCaller, seed_dir: Path, built, image_model, jp_base_url: str
) -> None:
    """{base_url}tfaas/: per model, an image line only for an image model, the upload in
    its own format; a link back to Lab."""
    import re

    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    ke = built["keras_export"]
    reply = await tfaas.upload("saved", ke.extra["tar_top"].read_bytes(),
                               filename="saved.tar.gz")
    assert reply.code == 200, reply.body
    reply = await tfaas.upload("cnn", image_model[0].read_bytes(), filename="cnn.keras")
    assert reply.code == 200, reply.body
    page = (await tfaas.call("GET", "")).body.decode()
    assert f'<a href="{jp_base_url}lab">JupyterLab</a>' in page
    sections = dict(re.findall(r"<h3>(\w+)</h3>\n<pre>(.*?)</pre>", page, re.S))
    assert sorted(sections) == ["cnn", "saved", "vk"]
    vk, saved, cnn = sections["vk"], sections["saved"], sections["cnn"]
    assert "/image" not in vk and "/image" not in saved
    assert "image=@file.png -F model=cnn" in cnn
    assert "-F name=vk -F params=@params.json -F model=@model.pb -F labels=@labels.txt" in vk
    assert "-F name=saved -F model=@saved_model.tar.gz\n" in saved and "params" not in saved
    assert "-F name=cnn -F model=@model.keras\n" in cnn and "model.pb" not in cnn
    assert "&quot;model&quot;:&quot;saved&quot;,&quot;values&quot;:[0.0,0.0,0.0," \
        "0.0,0.0,0.0]" in saved  # as many values as the model takes
    for name, section in sections.items():
        assert f"tfaas/delete/{name}" in section


# -- bad input -------------------------------------------------------------------


async def test_bad_predictions_are_clear_4xx(tfaas: TFaaSCaller, seed_dir: Path) -> None:
    await tfaas.upload_dir(seed_dir, "vk")
    cases = [
        (b'{"model": "nope", "values": [1]}', 404, "not found"),
        (b'{"model": "vk", "values": [1, 2, 3]}', 400, "expects 42 values"),
        (b'{"model": "vk", "values": ["a", "b"]}', 400, "numbers"),
        (b'{"model": "vk", "values": [[1, 2], [1]]}', 400, "same length"),
        (b'{"model": "vk", "values": [NaN]}', 400, "invalid JSON"),
        (b'{"model": "vk", "values": [1e999]}', 400, "too large to read"),
        (b'{"model": "vk", "values": [%s]}' % b",".join([b"1e39"] * 42), 400,
         "finite float32"),
        (b'{"model": "vk", "values": [1, null]}', 400, "not null"),
        (b'{"model": "vk", "values": []}', 400, "empty"),
        (b'{"model": "vk"', 400, "invalid JSON"),
        (b"[1, 2]", 400, "object"),
        (b'{"model": "../etc", "values": [1]}', 400, "invalid model name"),
        (b'{"model": "vk", "values": [1], "version": 7}', 404, "no version 7"),
        (b"", 400, "empty"),
    ]
    for body, code, words in cases:
        reply = await tfaas.call("POST", "json", body)
        assert reply.code == code, (body, reply.body)
        error = reply.json()["error"]
        assert words in error, (body, error)
        assert "Traceback" not in error
    reply = await tfaas.call("POST", "proto", b"\xff\xff\xff")
    assert reply.code == 400 and "Row" in reply.json()["error"]
    assert (await tfaas.call("GET", "json")).code == 405
    # the server keeps serving, and counted the failures of the model that exists
    doc = json.loads((seed_dir / "input.json").read_text())
    assert (await tfaas.predict(doc)).code == 200
    stats = (await tfaas.call("GET", "status")).json()["models"]
    # "expects 42 values" and 1e39 for float32: the ones that reached the model
    assert stats["vk"]["errors"] == 2
    assert "nope" not in stats


async def test_bad_uploads_are_clear_4xx(tfaas: TFaaSCaller, seed_dir: Path, model_dir) -> None:
    params = json.loads((seed_dir / "params.json").read_text())
    model = (seed_dir / "model.pb").read_bytes()
    reply = await tfaas.upload(None, model)
    assert reply.code == 400 and "name" in reply.json()["error"]
    body, ctype = encode_multipart({"name": "x"})
    reply = await tfaas.call("POST", "upload", body, {"Content-Type": ctype})
    assert reply.code == 400 and "model" in reply.json()["error"]
    reply = await tfaas.upload("bad", b"this is not a graph", params={"name": "bad"})
    assert reply.code == 400 and "unreadable model" in reply.json()["error"]
    reply = await tfaas.upload("vk", model, params={**params, "inputNode": "nope"})
    assert reply.code == 400 and "nope" in reply.json()["error"]
    reply = await tfaas.upload("../x", model)
    assert reply.code == 400 and "invalid model name" in reply.json()["error"]
    reply = await tfaas.call("POST", "upload", b"--b\r\nContent-Disposition: form-data; name=",
                             {"Content-Type": "multipart/form-data; boundary=b"})
    assert reply.code == 400 and "multipart" in reply.json()["error"]
    reply = await tfaas.call("POST", "upload", b"not a tarball",
                             {"Content-Type": "application/octet-stream"})
    assert reply.code == 400 and "archive" in reply.json()["error"]
    # nothing was left behind, and nothing half-written is listed
    assert (await tfaas.call("GET", "models")).json() == []
    assert not list((model_dir / ".staging").glob("*"))
