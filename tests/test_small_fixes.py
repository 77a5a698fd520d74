"""Small refusals said clearly: an image header beyond ``max_image_pixels``, a key at
the page and the key routes, a version number too large to read, and a model's own
OpenAPI description naming that model only."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from helpers import TFaaSCaller, seed_upload_body
from jsonschema import Draft202012Validator
from test_decoder_limits import png
from test_keys import KeyCaller, create_key, keys_file, seed_row, with_key  # noqa: F401

from tfaas_jupyter.client.forms import encode_multipart


@pytest.fixture
def tfaas_config(keys_file: Path) -> dict[str, Any]:  # noqa: F811
    return {"keys_file": str(keys_file)}


def png_header(width: int, height: int) -> bytes:
    """A png that declares ``width`` x ``height`` pixels and holds one row of data."""
    return png(width, height, zlib.compress(b"\0" * (1 + 3 * 16)))


async def _upload_seed(tfaas: TFaaSCaller, seed_dir: Path) -> None:
    body, ctype = seed_upload_body(seed_dir)
    reply = await tfaas.call("POST", "upload", body, {"Content-Type": ctype})
    assert reply.code == 200, reply.body


async def test_image_beyond_max_image_pixels_is_a_413_naming_the_setting(
    tfaas: TFaaSCaller, seed_dir: Path
) -> None:
    await _upload_seed(tfaas, seed_dir)
    for side in (20000, 6400):  # beyond Pillow's own bomb limit, and below it
        body, ctype = encode_multipart({"model": "vk"}, {
            "image": ("bomb.png", png_header(side, side), "image/png")})
        reply = await tfaas.call("POST", "image", body, {"Content-Type": ctype})
        error = reply.json()["error"]
        assert reply.code == 413, (side, reply.code, error)
        assert "max_image_pixels" in error and f"{side}x{side}" in error, error
        assert "decompression bomb" not in error.lower(), error


async def test_a_key_gets_403_at_the_page_and_the_key_routes(
    tfaas: TFaaSCaller, with_key: KeyCaller, seed_dir: Path  # noqa: F811
) -> None:
    await _upload_seed(tfaas, seed_dir)
    key = (await create_key(tfaas, "both", scopes=["predict", "manage"]))["key"]
    for path, url_key in (("", False), ("", True), ("keys", True), ("keys/both", True),
                          ("keys", False), ("graph/?model=vk", False), ("graph/", True),
                          ("upload/contents", True)):
        method = "POST" if path == "upload/contents" else "GET"
        reply = await with_key.call(method, path, key, url_key=url_key)
        assert reply.code == 403, (path, url_key, reply.code, reply.body[:300])
        assert key not in reply.body.decode("utf-8", "replace")
    # nothing else changed: the key still predicts and a Jupyter login still sees the page
    reply = await with_key.call("POST", "json", key, json.dumps(seed_row(seed_dir)).encode(),
                                url_key=True)
    assert reply.code == 200, reply.body
    assert (await tfaas.call("GET", "")).code == 200
    assert [k["name"] for k in (await tfaas.call("GET", "keys")).json()] == ["both"]


async def test_a_huge_version_is_a_400_naming_the_field(
    tfaas: TFaaSCaller, seed_dir: Path
) -> None:
    await _upload_seed(tfaas, seed_dir)
    values = json.dumps(seed_row(seed_dir)["values"])
    for version in ("1" + "0" * 400, "1e400", str(10**12), "18446744073709551616"):
        body = f'{{"model": "vk", "version": {version}, "values": {values}}}'.encode()
        reply = await tfaas.call("POST", "json", body)
        error = reply.json()["error"]
        assert reply.code == 400, (version[:20], reply.code, error)
        assert "version" in error and "infinity" not in error, (version[:20], error)
    body = f'{{"model": "vk", "version": 1, "values": {values}}}'.encode()
    assert (await tfaas.call("POST", "json", body)).code == 200
    # a huge number among the values is named as such
    reply = await tfaas.call("POST", "json", b'{"model": "vk", "values": [1' + b"0" * 400 + b"]}")
    assert reply.code == 400 and "'values'" in reply.json()["error"], reply.body


async def test_model_description_names_that_model_only(
    tfaas: TFaaSCaller, seed_dir: Path
) -> None:
    await _upload_seed(tfaas, seed_dir)  # vk is now the default model too
    row = seed_row(seed_dir)

    async def validator() -> tuple[dict[str, Any], Draft202012Validator]:
        spec = (await tfaas.call("GET", "models/vk/openapi.json")).json()
        request = spec["components"]["schemas"]["PredictRequest"]
        schema = {"$defs": spec["components"]["schemas"], **json.loads(
            json.dumps(request).replace("#/components/schemas/", "#/$defs/"))}
        return request, Draft202012Validator(schema)

    request, valid = await validator()
    assert not valid.is_valid({**row, "model": "other"})
    # the default model may be left out (absent, null or empty): the server answers it
    for default in ({"values": row["values"]}, {**row, "model": ""}, {**row, "model": None}):
        assert valid.is_valid(default), default
    reply = await tfaas.call("POST", "json", json.dumps({"values": row["values"]}).encode())
    assert reply.code == 200, reply.body
    # once vk is not the default, its description requires its name, which is answered
    reply = await tfaas.upload("other", (seed_dir / "model.pb").read_bytes(),
                               params=json.loads((seed_dir / "params.json").read_text()))
    assert reply.code == 200, reply.body
    request, valid = await validator()
    assert request["properties"]["model"] == {"type": "string", "enum": ["vk"]}
    assert "model" in request["required"]
    for refused in ({"values": row["values"]}, {**row, "model": ""}, {**row, "model": None},
                    {**row, "model": "other"}):
        assert not valid.is_valid(refused), refused
    assert valid.is_valid(row)
    reply = await tfaas.predict(row)
    assert reply.code == 200, reply.body
