"""Models put into model_dir by hand: a version folder without our tfaas.json, and the
original TFaaS's flat layout (params.json and the model right in the model's folder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from helpers import TFaaSCaller, seed_predict

from tfaas_jupyter.client.present import status_headline, status_strip


async def test_original_flat_layout_is_served(
    tfaas: TFaaSCaller, model_dir: Path, seed_dir: Path
) -> None:
    flat = model_dir / "vk"
    flat.mkdir(parents=True)
    for name in ("params.json", "model.pb", "labels.txt"):
        shutil.copy(seed_dir / name, flat / name)
    doc = json.loads((seed_dir / "input.json").read_text())
    reply = await tfaas.predict(doc)
    assert reply.code == 200, reply.body
    (probability,) = reply.json()
    np.testing.assert_allclose(probability, seed_predict(doc["values"])[0], rtol=1e-5)
    (model,) = (await tfaas.call("GET", "models")).json()
    assert (model["name"], model["versions"], model["format"]) == ("vk", [1], "graphdef")
    assert model["label_names"] == ["signal"]
    assert model["inputs"][0]["shape"] == [None, 42]  # learnt from the worker
    # an upload on top makes version 2, which then serves alone
    reply = await tfaas.upload_dir(seed_dir, "vk")
    assert reply.code == 200 and reply.json()["version"] == 2, reply.body
    assert (await tfaas.call("GET", "models/vk")).json()["versions"] == [2]
    assert (await tfaas.predict(doc)).json() == [probability]


async def test_hand_made_version_folder_is_served(
    tfaas: TFaaSCaller, model_dir: Path, built: dict
) -> None:
    keras_file = built["keras_file"]
    folder = model_dir / "hand" / "3"
    folder.mkdir(parents=True)
    shutil.copy(keras_file.path, folder / "my.keras")
    x = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    reply = await tfaas.predict({"model": "hand", "values": x.tolist()})
    assert reply.code == 200, reply.body
    np.testing.assert_allclose(reply.json(), keras_file.reference([x])[0], rtol=1e-5)
    detail = (await tfaas.call("GET", "models/hand")).json()
    assert detail["versions"] == [3] and detail["format"] == "keras"
    # a folder holding no model is not listed, and asking for it is a clear 404
    (model_dir / "empty" / "1").mkdir(parents=True)
    (model_dir / "empty" / "1" / "notes.txt").write_text("nothing here")
    assert [m["name"] for m in (await tfaas.call("GET", "models")).json()] == ["hand"]
    assert (await tfaas.predict({"model": "empty", "values": [1.0]})).code == 404


async def test_deleting_a_version_unloads_it(tfaas: TFaaSCaller, seed_dir: Path) -> None:
    doc = json.loads((seed_dir / "input.json").read_text())
    for _ in range(2):
        assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    for version in (1, 2):
        assert (await tfaas.predict({**doc, "version": version})).code == 200
    status = (await tfaas.call("GET", "status")).json()
    assert status["models_loaded"].count("vk") == 2
    # each loaded version is told apart by its number: vk v1, vk v2 (not vk, vk)
    assert len(status["worker"]["loaded"]) == 2
    assert sorted((v["name"], v["version"]) for v in status["versions_loaded"]) == \
        [("vk", 1), ("vk", 2)]
    shown = status_strip(status, None)["loaded"]
    assert sorted(shown.split(", ")) == ["vk v1", "vk v2"]
    assert f"models loaded: {shown}" in status_headline(status)
    assert (await tfaas.call("DELETE", "delete/vk/1")).code == 200
    status = (await tfaas.call("GET", "status")).json()
    assert status["models_loaded"].count("vk") == 1
    assert status["versions_loaded"] == [{"name": "vk", "version": 2}]
    assert status_strip(status, None)["loaded"] == "vk v2"
    assert (await tfaas.predict(doc)).code == 200
