"""TFaaS keys: created, listed and revoked by the owner; a key predicts (scope
``predict``) or manages models (scope ``manage``) for its models and reaches nothing
else, Jupyter's own API included; a key-bearing URL counts exactly as the header."""

from __future__ import annotations

import io
import json
import stat
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import Reply, TFaaSCaller, seed_predict, seed_upload_body
from test_cpp_client import cpp_example  # noqa: F401 - a fixture
from test_curl_recipes import recipe_seed  # noqa: F401 - a fixture
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
    # ?token=KEY is taken as the key as well (never handed to Jupyter's auth)
    reply = await with_key.call("POST", f"json?token={key}", None, json.dumps(doc).encode())
    assert reply.code == 200 and reply.json() == expected
    reply = await with_key.call("GET", f"api/status?token={key}", None)
    assert reply.code == 403

    # the standard protocols' routes and the model's own description are predictions too
    v2_input = (await tfaas.call("GET", "v2/models/vk")).json()["inputs"][0]["name"]
    v2_doc = {"inputs": [{"name": v2_input, "shape": [1, len(doc["values"])],
                          "datatype": "FP32", "data": doc["values"]}]}
    reply = await with_key.call("POST", "v2/models/vk/infer", key, json.dumps(v2_doc).encode())
    assert reply.code == 200 and reply.json()["outputs"][0]["data"] == expected, reply.body
    reply = await with_key.call("POST", "v1/models/vk:predict", key,
                                json.dumps({"instances": [doc["values"]]}).encode())
    assert reply.code == 200 and reply.json()["predictions"] == [expected], reply.body
    for path in ("v2/models/vk", "v2/models/vk/ready", "v1/models/vk", "v1/models/vk/metadata",
                 "models/vk/openapi.json", "v2", "v2/health/ready"):
        assert (await with_key.call("GET", path, key)).code == 200, path

    # another model, even one that exists, is refused (and so is a missing one)
    other = {"model": "other", "values": [0.5] * len(doc["values"])}
    for model_doc in (other, {**other, "model": "nosuch"}):
        reply = await with_key.call("POST", "json", key, json.dumps(model_doc).encode())
        assert reply.code == 403 and "vk-only" in reply.json()["error"], reply.body
    for method, path, payload in (
        ("POST", "v2/models/other/infer", json.dumps(v2_doc).encode()),
        ("POST", "v1/models/other:predict", json.dumps({"instances": [[0.5] * 6]}).encode()),
        ("GET", "v2/models/other", None), ("GET", "v1/models/other/metadata", None),
        ("GET", "models/other/openapi.json", None),
    ):
        reply = await with_key.call(method, path, key, payload)
        assert reply.code == 403 and "vk-only" in reply.json()["error"], (path, reply.body)

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
        ("GET", "export?model=vk", None, {}),
        ("PUT", "models/vk/labels/stable", b'{"version": 1}', {}),
        ("DELETE", "models/vk/labels/stable", None, {}),
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
    # nor its labels
    reply = await tfaas.call("PUT", "models/other/labels/stable", b'{"version": 1}')
    assert reply.code == 200, reply.body
    for method, payload in (("DELETE", None), ("PUT", b'{"version": 1}'), ("GET", None)):
        reply = await with_key.call(method, "models/other/labels/stable", key, payload)
        assert reply.code == 403, (method, reply.body)
    labels = (await tfaas.call("GET", "models/other")).json()["version_labels"]
    assert labels == {"stable": 1}, labels
    # the export holds the key's models only
    reply = await with_key.call("GET", "export?model=other", key)
    assert reply.code == 403 and "does not cover model 'other'" in reply.json()["error"]
    for path in ("export", "export?model=vk"):
        reply = await with_key.call("GET", path, key)
        assert reply.code == 200, (path, reply.body[:300])
        with tarfile.open(fileobj=io.BytesIO(reply.body)) as tar:
            exported = {n.split("/")[1] for n in tar.getnames() if n.startswith("models/")}
        assert exported == {"vk"}, (path, exported)
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
    from tfaas_jupyter.server.errors import TFaaSError
    from tfaas_jupyter.server.keys import KeyStore

    store = KeyStore(tmp_path / "keys.json")
    key, _ = store.create("a")
    grant = store.verify(key)
    assert grant is not None and grant.scopes == {"predict"} and grant.models is None
    assert store.verify(key + "x") is None and store.verify("token") is None
    (tmp_path / "keys.json").chmod(0o644)
    assert KeyStore(tmp_path / "keys.json").verify(key) is None
    with pytest.raises(TFaaSError, match="mode 0600 .it has mode 0644") as refused:
        KeyStore(tmp_path / "keys.json").list()
    assert refused.value.status == 409
    # a second store on the same file (another server process) sees revocations at once
    (tmp_path / "keys.json").chmod(0o600)
    other = KeyStore(tmp_path / "keys.json")
    assert other.verify(key) is not None
    store.revoke("a")
    assert other.verify(key) is None
    np.testing.assert_equal(other.list(), [])


def test_request_log_never_holds_a_key(tmp_path: Path, seed_dir: Path) -> None:
    """Jupyter's request log (every request at debug level) and our own log lines show
    a key URL's path with ``[secret]``, and never the key of a header."""
    from servers import jupyter_server

    with jupyter_server(tmp_path / "home", args=["--log-level=DEBUG"]) as server:
        key = server.call("POST", "tfaas/keys", {"name": "logged", "scopes": ["predict",
                                                                             "manage"]})["key"]
        body, ctype = seed_upload_body(seed_dir)
        code, answer = server.request("POST", f"tfaas/key/{key}/upload", body,
                                      {"Content-Type": ctype})
        assert code == 200, answer
        doc = json.dumps(seed_row(seed_dir)).encode()
        for path, payload in ((f"tfaas/key/{key}/json", doc),          # 200
                              (f"tfaas/key/{key}/json", b"{"),         # 400
                              (f"tfaas/key/{key}/status", None),       # 403
                              (f"tfaas/key/{key}/nosuch", None),       # 404
                              (f"tfaas/key/{key}x/json", doc),         # 403, wrong key
                              (f"tfaas/key/{key}/models?token={key}", None)):
            server.request("POST" if payload else "GET", path, payload)
        import urllib.request

        req = urllib.request.Request(server.tfaas + "json", data=doc, method="POST",
                                     headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            assert resp.status == 200
        log = server.log()
    assert key not in log and key[4:20] not in log
    assert "POST /tfaas/key/[secret]/json" in log
    assert "tfaas/key/[secret]/nosuch" in log


async def test_magic_cli_and_client_use_keys(
    jp_fetch, jp_http_port: int, jp_base_url: str, jp_serverapp, seed_dir: Path,
    tmp_path: Path, tfaas: TFaaSCaller, capsys: pytest.CaptureFixture[str],
) -> None:
    """``%tfaas key create/list/revoke``: the key (or key URL) goes to a 0600 file, never
    into the output, which prints curl and tfaas lines that work as printed; the key then
    works in TFaaSClient (header or key URL) and in the ``tfaas`` command through
    ``--token-file`` and ``$TFAAS_TOKEN``."""
    import asyncio
    import os
    import shutil
    import sys

    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    from tfaas_jupyter.client import TFaaSClient, TFaaSClientError, discovery

    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    root = f"http://localhost:{jp_http_port}{jp_base_url}"
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "tfaas_jupyter")

    def magic(line: str) -> Any:
        return shell.run_line_magic("tfaas", line)

    try:
        token = jp_serverapp.identity_provider.token
        await asyncio.to_thread(magic, f"connect {root} --token {token}")
        await asyncio.to_thread(magic, "key create grid --model vk")
        printed = capsys.readouterr().out
        keys_dir = Path.home() / ".tfaas" / "keys"
        key_path = keys_dir / "grid.key"
        key = key_path.read_text().strip()
        assert key.startswith("tfk_") and key not in printed and "tfk_" not in printed
        assert f"is in {key_path} (mode 0600)" in printed and "predict; vk" in printed
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(keys_dir.parent.stat().st_mode) == 0o700
        url_path = tmp_path / "pipeline.url"
        await asyncio.to_thread(
            magic, f"key create pipeline --scope manage --url --save {url_path}")
        printed_url = capsys.readouterr().out
        url = url_path.read_text().strip()
        assert url.startswith(root + "tfaas/key/tfk_") and url.endswith("/")
        assert "tfk_" not in printed_url and stat.S_IMODE(url_path.stat().st_mode) == 0o600
        with pytest.raises(UsageError, match="exists: not overwriting"):
            await asyncio.to_thread(magic, f"key create again --save {key_path}")
        assert key_path.read_text().strip() == key
        frame = await asyncio.to_thread(magic, "key list")
        assert list(frame.index) == ["grid", "pipeline"]  # no key 'again' was made
        assert frame.loc["pipeline", "scopes"] == "manage, predict"
        assert frame.loc["pipeline", "models"] == "all models"
        assert frame.loc["grid", "models"] == "vk"
        assert set(frame["last used"]) == {"never"} and "NaN" not in frame.to_string()
        assert "jupyter --data-dir" in capsys.readouterr().out
        assert key not in frame.to_string() and url not in frame.to_string()
    finally:
        discovery.disconnect()

    # the lines send the example request written beside the key: a row of vk's width
    example = keys_dir / "grid.example.json"
    assert f"is in {example}" in printed
    doc = json.loads(example.read_text())
    assert doc == {"model": "vk", "values": [0.0] * 42}
    expected = (await tfaas.predict(doc)).json()
    np.testing.assert_allclose(expected, seed_predict(doc["values"]), rtol=1e-5)
    # the printed lines work as printed (from any folder), the key read from its file
    curl_line = next(line.strip() for line in printed.splitlines()
                     if line.strip().startswith("curl "))
    code, out, err = await _bash(curl_line, tmp_path)
    assert code == 0 and json.loads(out) == expected, err
    tfaas_line = next(line.strip() for line in printed.splitlines()
                      if line.strip().startswith("tfaas "))
    bin_dir = os.path.dirname(sys.executable)
    code, out, err = await _bash(f'PATH="{bin_dir}:$PATH" {tfaas_line} --json', tmp_path)
    assert code == 0 and json.loads(out) == expected, err
    with TFaaSClient(root + "tfaas", token=key) as client:
        got = await asyncio.to_thread(client.predict_raw, doc)
        assert got == expected
        with pytest.raises(TFaaSClientError) as refused:
            await asyncio.to_thread(client.models)
        assert refused.value.status == 403
    with TFaaSClient(url.rstrip("/")) as by_url:
        assert "tfk_" not in repr(by_url)
        assert [m["name"] for m in await asyncio.to_thread(by_url.models)] == ["vk"]
        assert await asyncio.to_thread(by_url.predict_raw, doc) == expected

    key_file = tmp_path / "key.txt"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    script = shutil.which("tfaas", path=os.path.dirname(sys.executable))
    command = [script] if script else [sys.executable, "-m", "tfaas_jupyter.client.cli"]
    environ = {k: v for k, v in os.environ.items()
               if k not in ("TFAAS_TOKEN", "JUPYTER_TOKEN", "JPY_API_TOKEN",
                            "JUPYTERHUB_API_TOKEN", "TFAAS_URL")}
    for extra, env in (([f"--token-file={key_file}"], {}), ([], {"TFAAS_TOKEN": key})):
        proc = await asyncio.create_subprocess_exec(
            *command, f"--url={root}tfaas", f"--predict={example}", "--json",
            *extra, env={**environ, **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out_b, err_b = await asyncio.wait_for(proc.communicate(), timeout=300)
        assert proc.returncode == 0, err_b.decode()
        assert json.loads(out_b) == expected

    try:
        await asyncio.to_thread(magic, f"connect {root} --token {token}")
        await asyncio.to_thread(magic, "key revoke grid")
        assert "revoked key grid" in capsys.readouterr().out
    finally:
        discovery.disconnect()
    with TFaaSClient(root + "tfaas", token=key) as client:
        with pytest.raises(TFaaSClientError) as gone:
            await asyncio.to_thread(client.predict_raw, doc)
        assert gone.value.status == 403


def _section_blocks(readme: str, title: str) -> list[str]:
    import re

    start = readme.index(title)
    end = readme.find("\n## ", start + len(title))
    return re.findall(r"```bash\n(.*?)```", readme[start:end], flags=re.S)


async def _bash(script: str, cwd: Path) -> tuple[int, str, str]:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", "set -euo pipefail\n" + script, cwd=str(cwd),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=300)
    return proc.returncode or 0, out.decode(), err.decode()


def _expected_lines(block: str) -> list[str]:
    import re

    return [e.strip() for e in re.findall(r"^#=> (.*)$", block, flags=re.M)]


async def test_readme_grid_job_recipe_and_curl_recipes_through_a_key_url(
    jp_fetch, jp_http_port: int, jp_base_url: str, jp_serverapp, tfaas: TFaaSCaller,
    recipe_seed: Path, tmp_path: Path, model_dir: Path,  # noqa: F811 - imported fixture
) -> None:
    """The Keys page's blocks as written; then the curl recipes with a key-bearing URL as
    ``$TFAAS`` and no Authorization header (all but the status and no-token ones)."""
    import os
    import shutil
    import sys

    if shutil.which("curl") is None or shutil.which("protoc") is None:
        pytest.skip("curl and protoc are needed (apt-get install curl protobuf-compiler)")
    docs = Path(__file__).resolve().parents[1] / "docs" / "clients"
    keys_page, curl_page = (docs / "keys.md").read_text(), (docs / "curl.md").read_text()
    tfaas_url = f"http://localhost:{jp_http_port}{jp_base_url}tfaas"
    token = jp_serverapp.identity_provider.token
    bindir = os.path.dirname(sys.executable)
    env = (f"export PATH='{bindir}':\"$PATH\"\nexport TFAAS='{tfaas_url}'\n"
           f"export JUPYTER_TOKEN='{token}'\n")
    assert (await tfaas.upload_dir(recipe_seed, "vk")).code == 200
    blocks = _section_blocks(keys_page, "## Keys:")
    assert len(blocks) == 3
    for number, block in enumerate(blocks):
        code, out, err = await _bash(env + block, recipe_seed)
        assert code == 0, f"keys block {number} failed:\n{block}\n{err}"
        for expected in _expected_lines(block):
            assert expected in out, (number, expected, out, err)
    assert (await tfaas.call("GET", "keys")).json() == []
    assert (await tfaas.call("DELETE", "delete/vk")).code == 200
    # the recipes' expected lines are those of a fresh repository (version 1), while a
    # deleted model's numbers are never reused: its high-water mark goes too
    (model_dir / ".versions" / "vk").unlink()

    key = (await create_key(tfaas, "recipes", scopes=["predict", "manage"]))["key"]
    key_env = (f"export TFAAS='{tfaas_url}/key/{key}'\nexport JUPYTER_TOKEN=\n"
               f"export PROTO='{Path(__file__).resolve().parents[1] / 'proto'}'\n")
    ran = 0
    for block in _section_blocks(curl_page, "## curl recipes")[1:]:
        if "/status" in block or "# no token" in block:
            continue
        script = block.replace('-H "Authorization: token $JUPYTER_TOKEN" ', "")
        assert "Authorization" not in script
        code, out, err = await _bash(key_env + script, recipe_seed)
        assert code == 0, f"recipe through the key URL failed:\n{script}\n{err}"
        for expected in _expected_lines(block):
            assert expected in out, (expected, out, err)
        ran += 1
    assert ran >= 6


async def test_cpp_client_sends_a_key_as_it_sends_a_token(
    cpp_example: Path, tfaas: TFaaSCaller, seed_dir: Path, jp_http_port: int,  # noqa: F811
    jp_base_url: str,
) -> None:
    """The talk's C++ client, unchanged: a key in $TFAAS_TOKEN, or a key-bearing URL."""
    from test_cpp_client import run

    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    base = f"http://localhost:{jp_http_port}{jp_base_url}tfaas"
    vk_key = (await create_key(tfaas, "cpp", models=["vk"]))["key"]
    other_key = (await create_key(tfaas, "cpp-other", models=["other"]))["key"]
    code, by_key, err = await run(cpp_example, base, "vk", env={"TFAAS_TOKEN": vk_key})
    assert code == 0 and by_key.startswith("class: signal probability: "), err
    code, by_url, err = await run(cpp_example, f"{base}/key/{vk_key}", "vk", env={})
    assert code == 0 and by_url == by_key, err
    code, out, err = await run(cpp_example, base, "vk", env={"TFAAS_TOKEN": other_key})
    assert code == 1 and "HTTP 403" in err and other_key not in err
