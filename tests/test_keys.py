"""TFaaS keys: created, listed and revoked by the owner; a key predicts (scope
``predict``) or manages models (scope ``manage``) for its models and reaches nothing
else, Jupyter's own API included; a key-bearing URL counts exactly as the header."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Reply, TFaaSCaller, seed_upload_body
from tornado.httpclient import AsyncHTTPClient

from tfaas_jupyter.client.forms import encode_multipart

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "keysdir" / "keys.json"


@pytest.fixture
def tfaas_config(keys_file: Path) -> dict[str, Any]:
    return {"keys_file": str(keys_file)}


class KeyCaller:
    """Calls ``{base_url}tfaas/...`` with a TFaaS key (and nothing else)."""

    def __init__(self, port: int, base_url: str) -> None:
        self.root = f"http://localhost:{port}{base_url}"

    async def call(self, method: str, path: str, key: str | None, body: bytes | None = None,
                   *, scheme: str = "Bearer", url_key: bool = False,
                   headers: dict[str, str] | None = None) -> Reply:
        headers = dict(headers or {})
        if url_key:
            url = f"{self.root}tfaas/key/{key}/{path}"
        else:
            url = f"{self.root}{path}" if path.startswith("api/") else f"{self.root}tfaas/{path}"
            if key is not None:
                headers["Authorization"] = f"{scheme} {key}"
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        response = await AsyncHTTPClient().fetch(
            url, method=method, headers=headers, body=body, raise_error=False,
            follow_redirects=False, allow_nonstandard_methods=True, request_timeout=180,
        )
        return Reply(response.code, response.headers, response.body)


@pytest.fixture
def with_key(jp_http_port: int, jp_base_url: str) -> KeyCaller:
    return KeyCaller(jp_http_port, jp_base_url)


async def create_key(tfaas: TFaaSCaller, name: str, **doc: Any) -> dict[str, Any]:
    reply = await tfaas.call("POST", "keys", json.dumps({"name": name, **doc}).encode())
    assert reply.code == 200, reply.body
    return reply.json()


def seed_row(seed_dir: Path) -> dict[str, Any]:
    return json.loads((seed_dir / "input.json").read_text())


async def test_owner_creates_lists_and_revokes_keys(
    tfaas: TFaaSCaller, with_key: KeyCaller, keys_file: Path, seed_dir: Path,
    jp_base_url: str,
) -> None:
    created = await create_key(tfaas, "grid-job", models=["vk"])
    key = created["key"]
    assert key.startswith("tfk_") and len(key) > 40
    assert created["models"] == ["vk"] and created["scopes"] == ["predict"]
    assert created["url"].endswith(f"{jp_base_url}tfaas/key/{key}/")

    # stored hashed, in a file only the user can read
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    stored = keys_file.read_text()
    assert key not in stored and key[4:] not in stored

    listed = await tfaas.call("GET", "keys")
    assert listed.code == 200 and key.encode() not in listed.body
    (entry,) = listed.json()
    assert entry == {"name": "grid-job", "models": ["vk"], "scopes": ["predict"],
                     "created": created["created"], "last_used": None}
    one = await tfaas.call("GET", "keys/grid-job")
    assert one.code == 200 and one.json() == entry

    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    doc = seed_row(seed_dir)
    by_token = await tfaas.predict(doc)
    by_key = await with_key.call("POST", "json", key, json.dumps(doc).encode())
    assert by_key.code == 200, by_key.body
    assert by_key.json() == by_token.json()
    assert (await tfaas.call("GET", "keys/grid-job")).json()["last_used"] is not None

    # a second name may not reuse one; bad requests are 400s naming the problem
    assert (await tfaas.call("POST", "keys", b'{"name": "grid-job"}')).code == 400
    for bad in (b"[]", b"{", b'{"name": "../x"}', b'{"name": "k", "scopes": ["root"]}',
                b'{"name": "k", "models": ["../etc"]}', b'{"name": "k", "models": []}'):
        reply = await tfaas.call("POST", "keys", bad)
        assert reply.code == 400 and reply.json()["error"], (bad, reply.body)
    assert (await tfaas.call("GET", "keys/nosuch")).code == 404
    assert (await tfaas.call("DELETE", "keys/nosuch")).code == 404

    revoked = await tfaas.call("DELETE", "keys/grid-job")
    assert revoked.code == 200 and revoked.json()["revoked"]["name"] == "grid-job"
    after = await with_key.call("POST", "json", key, json.dumps(doc).encode())
    assert after.code == 403 and key not in after.body.decode()
    assert (await tfaas.call("GET", "keys")).json() == []


async def test_predict_key_reaches_only_predictions_of_its_models(
    tfaas: TFaaSCaller, with_key: KeyCaller, seed_dir: Path, built: dict[str, Any]
) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    assert (await tfaas.upload_dir(built["graphdef"].path.parent, "other")).code == 200
    key = (await create_key(tfaas, "vk-only", models=["vk"]))["key"]
    doc = seed_row(seed_dir)
    expected = (await tfaas.predict(doc)).json()
    for scheme in ("Bearer", "bearer", "token"):
        reply = await with_key.call("POST", "json", key, json.dumps(doc).encode(), scheme=scheme)
        assert reply.code == 200 and reply.json() == expected, (scheme, reply.body)
    reply = await with_key.call("POST", "predict/json", key, json.dumps(doc).encode())
    assert reply.code == 200 and reply.json() == expected

    # another model, even one that exists, is refused (and so is a missing one)
    other = {"model": "other", "values": [0.5] * len(doc["values"])}
    for model_doc in (other, {**other, "model": "nosuch"}):
        reply = await with_key.call("POST", "json", key, json.dumps(model_doc).encode())
        assert reply.code == 403 and "vk-only" in reply.json()["error"], reply.body

    body, ctype = seed_upload_body(seed_dir)
    refused = [
        ("POST", "upload", body, {"Content-Type": ctype}),
        ("DELETE", "delete/vk", None, {}),
        ("POST", "delete", b'{"model": "vk"}', {}),
        ("GET", "models", None, {}),
        ("GET", "models/vk", None, {}),
        ("GET", "params/vk", None, {}),
        ("POST", "params", b'{"name": "vk"}', {}),
        ("GET", "status", None, {}),
        ("GET", "metrics", None, {}),
        ("GET", "openapi.json", None, {}),
        ("GET", "keys", None, {}),
        ("POST", "keys", b'{"name": "more"}', {}),
        ("DELETE", "keys/vk-only", None, {}),
        ("GET", "", None, {}),
        ("GET", "api/status", None, {}),
        ("GET", "api/contents", None, {}),
        ("GET", "api/kernels", None, {}),
        ("POST", "api/kernels", b"{}", {}),
        ("GET", "api/terminals", None, {}),
        ("GET", "api/me", None, {}),
    ]
    for method, path, payload, headers in refused:
        reply = await with_key.call(method, path, key, payload, headers=headers)
        assert reply.code in (302, 403), (method, path, reply.code, reply.body[:200])
        assert key not in reply.body.decode("utf-8", "replace")
    # nothing was changed by the refused calls
    assert [m["name"] for m in (await tfaas.call("GET", "models")).json()] == ["other", "vk"]
    assert [k["name"] for k in (await tfaas.call("GET", "keys")).json()] == ["vk-only"]

    # a wrong key, or one revoked, gets 403 and nothing else
    for wrong in (key[:-2] + "xx", "tfk_" + "A" * 43):
        reply = await with_key.call("POST", "json", wrong, json.dumps(doc).encode())
        assert reply.code == 403 and reply.json()["error"] == "invalid or revoked TFaaS key"


async def test_manage_key_manages_its_models_only(
    tfaas: TFaaSCaller, with_key: KeyCaller, seed_dir: Path, built: dict[str, Any]
) -> None:
    assert (await tfaas.upload_dir(built["graphdef"].path.parent, "other")).code == 200
    key = (await create_key(tfaas, "ci", models=["vk"], scopes=["manage", "predict"]))["key"]
    body, ctype = seed_upload_body(seed_dir)
    reply = await with_key.call("POST", "upload", key, body, headers={"Content-Type": ctype})
    assert reply.code == 200 and reply.json()["version"] == 1, reply.body
    reply = await with_key.call("GET", "models", key)
    assert reply.code == 200 and [m["name"] for m in reply.json()] == ["vk"]
    assert (await with_key.call("GET", "params/vk", key)).json()["inputNode"]
    assert (await with_key.call("GET", "models/other", key)).code == 403
    assert (await with_key.call("DELETE", "delete/other", key)).code == 403
    # an upload for a model the key does not cover is refused, and nothing is stored
    params = {**json.loads((seed_dir / "params.json").read_text()), "name": "vk2"}
    other_body, other_ctype = encode_multipart({"name": "vk2"}, {
        "params": ("params.json", json.dumps(params).encode(), "application/json"),
        "model": ("model.pb", (seed_dir / "model.pb").read_bytes(), "application/octet-stream"),
    })
    reply = await with_key.call("POST", "upload", key, other_body,
                                headers={"Content-Type": other_ctype})
    assert reply.code == 403, reply.body
    # manage is not key management, nor Jupyter's API
    assert (await with_key.call("POST", "keys", key, b'{"name": "x"}')).code == 403
    assert (await with_key.call("GET", "api/contents", key)).code == 403
    reply = await with_key.call("DELETE", "delete/vk", key)
    assert reply.code == 200 and reply.json()["deleted_versions"] == [1]
    assert [m["name"] for m in (await tfaas.call("GET", "models")).json()] == ["other"]

    # manage alone does not predict
    manage_only = (await create_key(tfaas, "admin", scopes=["manage"]))["key"]
    reply = await with_key.call("POST", "json", manage_only,
                                json.dumps({"model": "other", "values": [1.0]}).encode())
    assert reply.code == 403


async def test_key_url_serves_every_endpoint_like_the_header(
    tfaas: TFaaSCaller, with_key: KeyCaller, seed_dir: Path
) -> None:
    key = (await create_key(tfaas, "url", scopes=["predict", "manage"]))["key"]
    predict_only = (await create_key(tfaas, "url-predict"))["key"]
    body, ctype = seed_upload_body(seed_dir)
    reply = await with_key.call("POST", "upload", key, body, url_key=True,
                                headers={"Content-Type": ctype})
    assert reply.code == 200, reply.body
    doc = seed_row(seed_dir)
    expected = (await tfaas.predict(doc)).json()
    for k in (key, predict_only):
        reply = await with_key.call("POST", "json", k, json.dumps(doc).encode(), url_key=True)
        assert reply.code == 200 and reply.json() == expected
    reply = await with_key.call("GET", "models", key, url_key=True)
    assert [m["name"] for m in reply.json()] == ["vk"]
    for k, path in ((predict_only, "models"), (key, "status"), (key, "keys"),
                    ("tfk_" + "B" * 43, "json")):
        reply = await with_key.call("GET" if path != "json" else "POST", path, k, url_key=True)
        assert reply.code in (403, 404) and k not in reply.body.decode(), (path, reply.code)
    # an unknown endpoint under a key URL: 404 naming the path, without the key
    reply = await with_key.call("GET", "nosuch", key, url_key=True)
    assert reply.code == 404 and key not in reply.body.decode()
    assert "tfaas/key/[secret]/nosuch" in reply.json()["error"]
    reply = await with_key.call("DELETE", "delete/vk", key, url_key=True)
    assert reply.code == 200 and reply.json()["deleted_versions"] == [1]


def test_keys_file_is_refused_when_others_may_read_it(tmp_path: Path) -> None:
    from tfaas_jupyter.server.keys import KeyStore

    store = KeyStore(tmp_path / "keys.json")
    key, _ = store.create("a")
    grant = store.verify(key)
    assert grant is not None and grant.scopes == {"predict"} and grant.models is None
    assert store.verify(key + "x") is None and store.verify("token") is None
    (tmp_path / "keys.json").chmod(0o644)
    assert KeyStore(tmp_path / "keys.json").verify(key) is None
    # a second store on the same file (another server process) sees revocations at once
    (tmp_path / "keys.json").chmod(0o600)
    other = KeyStore(tmp_path / "keys.json")
    assert other.verify(key) is not None
    store.revoke("a")
    assert other.verify(key) is None
    np.testing.assert_equal(other.list(), [])
