"""Bugs found by exploratory testing, each pinned by the test that showed it."""

from __future__ import annotations

import errno
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from helpers import TFaaSCaller

from tfaas_jupyter.client.forms import encode_multipart
from tfaas_jupyter.server.errors import BadRequest

pytestmark = pytest.mark.timeout(600)


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def luma(rgb: np.ndarray) -> np.ndarray:
    """Gray levels of RGB pixels: L = R * 299/1000 + G * 587/1000 + B * 114/1000,
    rounded as PIL does (16-bit fixed point)."""
    r, g, b = (np.asarray(rgb, dtype=np.int64)[..., i] for i in range(3))
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16


async def post_image(tfaas: TFaaSCaller, model: str, data: bytes, filename: str = "x.png"):
    body, ctype = encode_multipart({"model": model}, {"image": (filename, data, "image/png")})
    return await tfaas.call("POST", "image", body, {"Content-Type": ctype})


@pytest.fixture(scope="session")
def gray_2d_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A classifier over 8x8 grayscale images with no channel axis (Input((8, 8))), as
    the Keras MNIST tutorials build them."""
    import keras

    keras.utils.set_random_seed(11)
    inp = keras.Input(shape=(8, 8))
    x = keras.layers.Flatten()(inp)
    out = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inp, out)
    path = tmp_path_factory.mktemp("gray2d") / "gray.keras"
    model.save(str(path))
    return path, model


async def test_image_into_a_model_without_channel_axis(tfaas: TFaaSCaller, gray_2d_model
                                                       ) -> None:
    """A [None, H, W] model takes one grayscale channel; other sizes are resized."""
    path, model = gray_2d_model
    reply = await tfaas.upload("gray", path.read_bytes(), filename="gray.keras",
                               labels="a\nb\nc\n")
    assert reply.code == 200, reply.body
    pixels = np.random.default_rng(5).integers(0, 255, size=(8, 8))
    reply = await post_image(tfaas, "gray", png(pixels))
    assert reply.code == 200, reply.body
    expected = np.asarray(model(pixels[None].astype(np.float32)))[0]
    got = {item["label"]: item["probability"] for item in reply.json()["labels"]}
    np.testing.assert_allclose([got[k] for k in "abc"], expected, rtol=1e-5, atol=1e-7)
    # an RGB image is converted to gray by the ITU-R 601-2 luma (computed here in
    # integers, as PIL documents it): each channel weighs differently, so a mean, one
    # channel or no conversion gives other answers (small levels: the softmax does not
    # saturate, so the answers tell them apart)
    rgb = np.random.default_rng(6).integers(0, 5, size=(8, 8, 3))
    reply = await post_image(tfaas, "gray", png(rgb))
    assert reply.code == 200, reply.body
    got = {item["label"]: item["probability"] for item in reply.json()["labels"]}
    expected = np.asarray(model(luma(rgb)[None].astype(np.float32)))[0]
    np.testing.assert_allclose([got[k] for k in "abc"], expected, rtol=1e-5, atol=1e-7)
    wrong = np.asarray(model(rgb.mean(axis=2)[None].astype(np.float32)))[0]
    assert not np.allclose(expected, wrong, rtol=1e-3, atol=1e-4)
    # and resized when its size differs: one colour stays that colour's luma
    colour = np.array([4, 0, 4])  # luma 2 (mean 2.67)
    reply = await post_image(tfaas, "gray", png(np.broadcast_to(colour, (20, 12, 3))))
    assert reply.code == 200, reply.body
    got = {item["label"]: item["probability"] for item in reply.json()["labels"]}
    plain = np.asarray(model(np.full((1, 8, 8), luma(colour), dtype=np.float32)))[0]
    np.testing.assert_allclose([got[k] for k in "abc"], plain, rtol=1e-5, atol=1e-7)
    wrong = np.asarray(model(np.full((1, 8, 8), colour.mean(), dtype=np.float32)))[0]
    assert not np.allclose(plain, wrong, rtol=1e-3, atol=1e-4)


async def test_failed_image_requests_count_against_their_model(
    tfaas: TFaaSCaller, built
) -> None:
    """As for /json: a failed /image for an existing model is in its statistics."""
    kf = built["keras_file"]
    assert (await tfaas.upload("kfile", kf.path.read_bytes(), filename="tiny.keras")).code == 200
    reply = await post_image(tfaas, "kfile", png(np.zeros((4, 4, 3))))
    assert reply.code == 400, reply.body
    status = (await tfaas.call("GET", "status")).json()
    assert status["models"]["kfile"] == {**status["models"]["kfile"], "requests": 2, "errors": 1}


@pytest.fixture(scope="session")
def int_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SavedModel over int64 ids (timestamps, hashed categories...): out = ids - 1.7e9."""
    import tensorflow as tf

    class Ids(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.int64, name="ids")])
        def serve(self, ids: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"offset": tf.cast(ids - 1_700_000_000, tf.float32)}

    root = tmp_path_factory.mktemp("ids")
    module = Ids()
    tf.saved_model.save(module, str(root / "ids"), signatures={"serving_default": module.serve})
    archive = root / "ids.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "ids", arcname="ids")
    return archive


async def test_integer_inputs_are_exact(tfaas: TFaaSCaller, int_model: Path) -> None:
    """Integers sent in JSON reach an int64 input exactly (not through float32, which
    rounds a Unix timestamp to a multiple of 128)."""
    reply = await tfaas.upload("ids", int_model.read_bytes(), filename="ids.tar.gz")
    assert reply.code == 200, reply.body
    reply = await tfaas.predict({"model": "ids", "values": [[1_700_000_001, 1_700_000_063]]})
    assert reply.code == 200, reply.body
    assert reply.json() == [[1.0, 63.0]]
    # a fraction or an out-of-range number cannot be an int64: a clear 400, no wrap-around
    for bad in ([1.5, 2], [1e30, 2]):
        reply = await tfaas.predict({"model": "ids", "values": bad})
        assert reply.code == 400, reply.body
        assert "ids" in reply.json()["error"]
    # the largest ids fit too
    reply = await tfaas.predict({"model": "ids", "values": [[2**62, 0]]})
    assert reply.code == 200, reply.body


async def test_typed_arrays_through_the_service(tfaas: TFaaSCaller, jp_serverapp,
                                                int_model: Path) -> None:
    """The service's entry for requests that carry typed tensors: one array per input,
    cast exactly (or refused), outputs in the model's dtype."""
    reply = await tfaas.upload("ids", int_model.read_bytes(), filename="ids.tar.gz")
    assert reply.code == 200, reply.body
    service = jp_serverapp.web_app.settings["tfaas_service"]
    ids = np.array([[1_700_000_001, 2**53 + 1], [0, 1]], np.int64)
    (out,) = await service.predict_inputs(service.resolve("ids"), [ids])
    assert out.dtype == np.float32
    assert out.tolist() == (ids - 1_700_000_000).astype(np.float32).tolist()
    with pytest.raises(BadRequest, match="whole numbers"):
        await service.predict_inputs(service.resolve("ids"), [np.array([[1.5, 2.0]])])
    with pytest.raises(BadRequest, match="takes 1 input"):
        await service.predict_inputs(service.resolve("ids"), [ids, ids])


@pytest.fixture
def make_read_only(model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """The repository's filesystem refuses writes (a read-only mount): as root a chmod
    would not do, so creating or renaming anything under model_dir fails with EROFS."""
    root = str(model_dir)
    real_mkdir, real_rename = os.mkdir, os.rename

    def refuse(path: object) -> bool:
        return os.fspath(path).startswith(root)  # type: ignore[arg-type]

    def mkdir(path, *args, **kwargs):
        if refuse(path) and not os.path.isdir(path):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    def rename(src, dst, *args, **kwargs):
        if refuse(src) or refuse(dst):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(src))
        return real_rename(src, dst, *args, **kwargs)

    def arm() -> None:
        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(os, "rename", rename)

    return arm


async def test_read_only_repository_is_a_clear_error(
    tfaas: TFaaSCaller, built, make_read_only
) -> None:
    """Serving from a read-only model_dir works; uploads and deletes say why they cannot."""
    g = built["graphdef"]
    assert (await tfaas.upload_dir(g.path.parent, "graph")).code == 200
    make_read_only()  # from now on the filesystem is read-only
    x = np.zeros((1, 6)).tolist()
    assert (await tfaas.predict({"model": "graph", "values": x})).code == 200
    reply = await tfaas.upload_dir(g.path.parent, "graph")
    assert reply.code == 403, reply.body
    assert "read-only" in reply.json()["error"] and "internal error" not in reply.json()["error"]
    reply = await tfaas.call("DELETE", "delete/graph")
    assert reply.code == 403, reply.body
    assert "read-only" in reply.json()["error"]
    assert (await tfaas.predict({"model": "graph", "values": x})).code == 200


async def test_unknown_paths_under_tfaas_are_json_404(tfaas: TFaaSCaller, jp_fetch) -> None:
    """A typo or a non-numeric version under tfaas/ gets the API's JSON error, not
    Jupyter's HTML page; without credentials it is still a 403."""
    for method, path in [("DELETE", "delete/vk/latest"), ("GET", "params/vk/abc"),
                         ("POST", "predict"), ("GET", "modelz")]:
        body = b"{}" if method == "POST" else None
        reply = await tfaas.call(method, path, body)
        assert reply.code == 404, (path, reply.body[:200])
        assert path in reply.json()["error"]
    response = await jp_fetch("tfaas", "modelz", raise_error=False,
                              headers={"Authorization": ""})
    assert response.code == 403
