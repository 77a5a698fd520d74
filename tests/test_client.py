"""The Python client (tfaas_jupyter.client) against a real, listening test server.

The server runs in the test's event loop, so every blocking client call goes
through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
import tfmodels
from conftest import seed_predict

from tfaas_jupyter.client.api import TFaaSClient, TFaaSClientError, normalize_url, token_from_env

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def tfaas_url(jp_fetch, jp_http_port: int, jp_base_url: str) -> str:
    """The tfaas base of the live server (``jp_fetch`` makes it listen)."""
    return f"http://localhost:{jp_http_port}{jp_base_url}tfaas/"


@pytest.fixture
def client(tfaas_url: str, jp_serverapp):
    c = TFaaSClient(tfaas_url, token=jp_serverapp.identity_provider.token, timeout=240)
    yield c
    c.close()


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, tfmodels.N_IN)).astype(np.float32)


# -- no server needed ------------------------------------------------------------


def test_url_forms() -> None:
    want = "http://h:8888/user/x/tfaas/"
    for url in ("http://h:8888/user/x/tfaas", "http://h:8888/user/x/tfaas/",
                "http://h:8888/user/x/", "http://h:8888/user/x", "http://h:8888/user/x/lab"):
        assert normalize_url(url) == (want, None), url
    assert normalize_url("http://h:8888/?token=abc") == ("http://h:8888/tfaas/", "abc")
    assert normalize_url("localhost:8888")[0] == "http://localhost:8888/tfaas/"
    assert TFaaSClient("http://h/a%40b/tfaas").url == "http://h/a%40b/tfaas/"
    with pytest.raises(ValueError):
        normalize_url("ftp://h/tfaas")


def test_token_from_env() -> None:
    assert token_from_env({"JUPYTER_TOKEN": "j", "JPY_API_TOKEN": "h"}) == "j"
    assert token_from_env({"TFAAS_TOKEN": "t", "JUPYTER_TOKEN": "j"}) == "t"
    assert token_from_env({"JUPYTERHUB_API_TOKEN": "hub"}) == "hub"
    assert token_from_env({}) is None


def test_connection_refused_is_a_client_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = TFaaSClient(f"http://127.0.0.1:{port}/tfaas", timeout=10)
    with pytest.raises(TFaaSClientError) as info:
        c.models()
    assert info.value.status is None
    assert "connection refused" in info.value.message


# -- against the live server -------------------------------------------------------


async def test_seed_model_every_data_form(client: TFaaSClient, seed_dir: Path) -> None:
    answer = await call(client.upload, "vk", seed_dir / "model.pb",
                        params=seed_dir / "params.json", labels=seed_dir / "labels.txt")
    assert answer["name"] == "vk" and answer["version"] == 1 and answer["format"] == "graphdef"
    doc = json.loads((seed_dir / "input.json").read_text())
    keys, values = doc["keys"], doc["values"]

    one = await call(client.predict, "vk", values)
    assert one.shape == (1,) and one.dtype == np.float32
    np.testing.assert_allclose(one, seed_predict(values), rtol=1e-5)

    many = await call(client.predict, "vk", [values, values, values])
    assert many.shape == (3, 1)
    np.testing.assert_allclose(many[:, 0], one[0], rtol=1e-6)

    as_dict = await call(client.predict, "vk", dict(zip(keys, values)))
    np.testing.assert_allclose(as_dict, one, rtol=1e-6)
    columns = {k: [v, v] for k, v in zip(keys, values)}
    np.testing.assert_allclose(await call(client.predict, "vk", columns), many[:2], rtol=1e-6)

    arr = np.asarray(values, dtype=np.float64)
    np.testing.assert_allclose(await call(client.predict, "vk", arr), one, rtol=1e-6)
    np.testing.assert_allclose(await call(client.predict, "vk", arr[None, :]), one[None, :],
                               rtol=1e-6)

    frame = pd.DataFrame([values, values], columns=keys)
    got = await call(client.predict, "vk", frame)
    assert got.shape == (2, 1)
    np.testing.assert_allclose(got[:, 0], one[0], rtol=1e-6)
    np.testing.assert_allclose(await call(client.predict, "vk", frame.iloc[0]), one, rtol=1e-6)

    # protobuf, as the C++ client: one Class per output, labelled from labels.txt
    proto = await call(client.predict_proto, "vk", values, keys)
    assert len(proto) == 1 and proto[0][0] == "signal"
    assert proto[0][1] == pytest.approx(float(one[0]), rel=1e-6)

    # no model named: the last uploaded through the form is the default
    np.testing.assert_allclose(await call(client.predict, None, values), one, rtol=1e-6)


async def test_listing_params_status_and_versions(client: TFaaSClient, built) -> None:
    g = built["graphdef"]
    first = await call(client.upload, "tiny", g.path, params=g.extra["params"],
                       labels=["signal"])
    second = await call(client.upload, "tiny", g.path.read_bytes(),
                        params={**g.params, "name": "tiny", "description": "second"})
    assert (first["version"], second["version"]) == (1, 2)

    models = await call(client.models)
    assert [m["name"] for m in models] == ["tiny"]
    assert models[0]["versions"] == [1, 2]
    detail = await call(client.model, "tiny")
    assert detail["version"] == 2 and len(detail["version_details"]) == 2
    assert (await call(client.params, "tiny"))["description"] == "second"
    assert "description" not in await call(client.params, "tiny", 1)

    x = rows(4)
    want = g.reference([x])[0]
    np.testing.assert_allclose(await call(client.predict, "tiny", x), want, rtol=1e-5)
    np.testing.assert_allclose(await call(client.predict, "tiny", x, version=1), want, rtol=1e-5)

    status = await call(client.status)
    assert "tiny" in status["models_on_disk"] and "worker" in status

    gone = await call(client.delete, "tiny", 2)
    assert gone["deleted_versions"] == [2]
    assert (await call(client.model, "tiny"))["versions"] == [1]
    await call(client.delete, "tiny")
    assert await call(client.models) == []

    with pytest.raises(TFaaSClientError) as info:
        await call(client.predict, "tiny", x)
    assert info.value.status == 404 and "tiny" in info.value.message
    with pytest.raises(TFaaSClientError) as info:
        await call(client.params, "nope")
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
        answer = await call(client.upload, name, model)
        assert answer["format"] == "savedmodel", name
        got = await call(client.predict, name, x)
        np.testing.assert_allclose(got, export.reference([x])[0], rtol=1e-5, atol=1e-6)

    kfile = built["keras_file"]
    assert (await call(client.upload, "kfile", kfile.path))["format"] == "keras"
    np.testing.assert_allclose(await call(client.predict, "kfile", x),
                               kfile.reference([x])[0], rtol=1e-5, atol=1e-6)

    # a live Keras model object, exported and packed by the client
    live = tfmodels._tiny_keras(seed=11)
    answer = await call(client.upload, "live", live, labels=["a", "b"])
    assert answer["format"] == "savedmodel" and answer["labels"] == ["a", "b"]
    want = np.asarray(live(x, training=False))
    np.testing.assert_allclose(await call(client.predict, "live", x), want, rtol=1e-5,
                               atol=1e-6)

    with pytest.raises(FileNotFoundError):
        await call(client.upload, "bad", tmp_path / "missing.pb")
    (tmp_path / "junk.pb").write_bytes(b"this is no graph")
    with pytest.raises(TFaaSClientError) as info:
        await call(client.upload, "bad", tmp_path / "junk.pb",
                   params={"inputNode": "x", "outputNode": "y"})
    assert info.value.status == 400 and info.value.message


async def test_image_bytes_path_and_pil(client: TFaaSClient, tmp_path: Path) -> None:
    from PIL import Image

    path, model = tfmodels.make_image_keras(tmp_path, classes=3, seed=3)
    await call(client.upload, "img", path, labels=["red", "green", "blue"])

    pixels = np.random.default_rng(1).integers(0, 255, size=(4, 4, 3)).astype(np.uint8)
    picture = Image.fromarray(pixels)
    png = tmp_path / "x.png"
    picture.save(png)
    probs = np.asarray(model(pixels[None].astype(np.float32), training=False))[0]
    best = ["red", "green", "blue"][int(np.argmax(probs))]
    for image in (png, png.read_bytes(), picture):
        answer = await call(client.image, "img", image)
        assert answer["labels"][0]["label"] == best
        assert answer["labels"][0]["probability"] == pytest.approx(float(probs.max()), rel=1e-4)
    assert (await call(client.image, "img", png))["filename"] == str(png)


async def test_auth_and_error_messages(client: TFaaSClient, tfaas_url: str,
                                       seed_dir: Path) -> None:
    anonymous = TFaaSClient(tfaas_url, timeout=60)
    with pytest.raises(TFaaSClientError) as info:
        await call(anonymous.models)
    assert info.value.status == 403
    wrong = TFaaSClient(tfaas_url, token="wrong", timeout=60)
    with pytest.raises(TFaaSClientError) as info:
        await call(wrong.status)
    assert info.value.status == 403

    with pytest.raises(TFaaSClientError) as info:
        await call(client.delete, "ghost")
    assert info.value.status == 404 and "ghost" in info.value.message

    await call(client.upload, "vk", seed_dir / "model.pb", params=seed_dir / "params.json")
    with pytest.raises(TFaaSClientError) as info:
        await call(client.predict, "vk", [1.0, 2.0])
    assert info.value.status == 400 and "42" in info.value.message
    with pytest.raises(ValueError):
        await call(client.predict, "vk", [[[1.0]]])

    # the kept-alive connection survives errors and is reused: many calls, one socket
    for _ in range(20):
        await call(client.predict, "vk", np.zeros(42))
    assert len(client._idle) == 1


async def test_upload_progress(client: TFaaSClient, seed_dir: Path) -> None:
    seen: list[tuple[int, int]] = []
    await call(client.upload, "vk", seed_dir / "model.pb", params=seed_dir / "params.json",
               progress=lambda sent, total: seen.append((sent, total)))
    total = seen[-1][1]
    assert seen[0][0] == 0 and seen[-1][0] == total > (seed_dir / "model.pb").stat().st_size
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)
