"""Property-based fuzzing of every endpoint of a live server: hypothesis drives real
HTTP requests (200 examples, derandomized); no 5xx, no hang, no traceback in a body."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from helpers import TFaaSCaller
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tfaas_jupyter.handlers import key_url_routes, routes

from tfaas_jupyter.client.forms import encode_multipart

pytestmark = pytest.mark.timeout(900)

names = st.one_of(
    st.sampled_from(["vk", "nope", "..", "%2e%2e", "a%2Fb", "%00", "%EF%BC%8E", "x" * 120]),
    st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=1,
            max_size=12),
)
versions = st.one_of(st.sampled_from(["1", "2", "0", "999999999"]),
                     st.integers(0, 10**12).map(str))
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.integers()
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=20,
)
predict_docs = st.fixed_dictionaries(
    {"values": st.one_of(
        st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=50),
        st.lists(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False),
                          min_size=42, max_size=42), max_size=4),
        json_values)},
    optional={"model": st.one_of(names, json_values), "keys": json_values,
              "version": st.one_of(versions, json_values)},
)


key_docs = st.fixed_dictionaries(
    {}, optional={"name": st.one_of(names, json_values),
                  "models": st.one_of(st.lists(names, max_size=3), json_values),
                  "scopes": st.one_of(st.lists(st.sampled_from(["predict", "manage", "root"]),
                                               max_size=3), json_values)},
)


def _fill(pattern: str, name: str, version: str, key: str = "tfk_x") -> str:
    path = pattern
    for group, value in (("name", name), ("version", version), ("label", version),
                         ("key_name", name), ("tfaas_key", key)):
        path = re.sub(rf"\(\?P<{group}>(?:[^()]|\([^()]*\))*\)", lambda _m, v=value: v, path)
    return path.replace("/?", "/").replace("\\.", ".").lstrip("/")


@st.composite
def requests_(draw: st.DrawFn) -> tuple[str, str, bytes | None, dict[str, str]]:
    pattern, _handler = draw(st.sampled_from(routes() + key_url_routes()))
    # "KEY": the test's real key; the others are wrong ones
    key = draw(st.sampled_from(["KEY", "tfk_" + "A" * 43, "tfk_", "x%2F..", "KEY%00"]))
    path = _fill(pattern, draw(names), draw(versions), key)
    method = draw(st.sampled_from(["GET", "POST", "DELETE", "PUT", "HEAD"]))
    kind = draw(st.sampled_from(["none", "json", "predict", "bytes", "multipart", "key"]))
    headers: dict[str, str] = {}
    if draw(st.integers(0, 3)) == 0:  # a key in the header instead of the token
        headers["Authorization"] = "Bearer " + draw(st.sampled_from(["KEY", "tfk_bad", "KEY "]))
    body: bytes | None = None
    if kind == "key":
        body = json.dumps(draw(key_docs)).encode()
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
        headers["Content-Type"] = "application/json"
    elif kind == "predict":
        body = json.dumps(draw(predict_docs)).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=400))
        headers["Content-Type"] = draw(st.sampled_from(
            ["application/octet-stream", "multipart/form-data; boundary=zz", "text/plain",
             "application/x-www-form-urlencoded"]))
    elif kind == "multipart":
        fields = draw(st.dictionaries(st.sampled_from(["name", "model", "version", "labels"]),
                                      st.text(max_size=20), max_size=3))
        files = {}
        for field in draw(st.lists(st.sampled_from(["model", "params", "image", "labels"]),
                                   max_size=3, unique=True)):
            files[field] = ("f.bin", draw(st.binary(max_size=300)), "application/octet-stream")
        body, headers["Content-Type"] = encode_multipart(fields, files)
        if draw(st.booleans()):
            body = body[: draw(st.integers(0, len(body)))]
    if method in ("GET", "HEAD", "DELETE") and draw(st.booleans()):
        body = None
    if draw(st.booleans()):
        headers["Content-Encoding"] = "base64"
    return method, path, body, headers


def run_fuzz(base: str, token: str, seen: dict[str, int], key: str = "tfk_none") -> None:
    @settings(max_examples=200, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(req=requests_())
    def one(req: tuple[str, str, bytes | None, dict[str, str]]) -> None:
        method, path, body, headers = req
        if method in ("POST", "PUT") and body is None:
            body = b""
        path = path.replace("KEY", key)
        headers = {k: v.replace("KEY", key) for k, v in headers.items()}
        request = urllib.request.Request(base + path, data=body, method=method,
                                         headers={"Authorization": f"token {token}", **headers})
        try:
            with urllib.request.urlopen(request, timeout=120) as resp:
                code, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            code, raw = err.code, err.read()
        seen[str(code)] = seen.get(str(code), 0) + 1
        text = raw.decode("utf-8", "replace")
        where = f"{method} /{path} {headers} {body[:200] if body else body!r}"
        assert code < 500, f"{where} -> {code} {text[:500]}"
        assert "Traceback" not in text and 'File "/' not in text, f"{where} -> {text[:500]}"
        assert key not in text, f"{where}: the key is in the answer"

    one()


async def test_fuzz_every_endpoint(tfaas: TFaaSCaller, seed_dir: Path, jp_http_port: int,
                                   jp_base_url: str, jp_serverapp, model_dir: Path) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    seen: dict[str, Any] = {}
    key, _ = jp_serverapp.web_app.settings["tfaas_keys"].create(
        "fuzz", scopes=["predict", "manage"])
    await asyncio.wait_for(
        asyncio.to_thread(run_fuzz, base, jp_serverapp.identity_provider.token, seen, key),
        timeout=800,
    )
    assert sum(seen.values()) >= 200, seen
    assert len(seen) >= 3, seen  # the fuzzer reached answers beyond errors
    assert not list((model_dir / ".staging").glob("*"))
    # still healthy
    x = (seed_dir / "input.json").read_bytes()
    await tfaas.upload_dir(seed_dir, "vk")
    assert (await tfaas.call("POST", "json", x)).code == 200


planted_files = st.dictionaries(
    st.sampled_from(["params.json", "tfaas.json", "labels.txt", "model.pb", "m.keras",
                     "saved_model.pb", ".last_version"]),
    st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries({}, optional={
            "model": st.one_of(st.sampled_from(["model.pb", "../x", "/etc/hostname", ".", "",
                                                "saved_model", "m.keras"]), json_values),
            "labels": st.one_of(st.sampled_from(["labels.txt", "../../x", "/etc/hostname"]),
                                json_values),
            "format": st.one_of(st.sampled_from(["graphdef", "savedmodel", "keras"]),
                                json_values),
            "uid": st.one_of(st.text(max_size=8), json_values),
            "inputNode": st.text(max_size=5), "outputNode": st.text(max_size=5),
            "keys": json_values, "name": json_values,
        }).map(lambda d: json.dumps(d).encode()),
        st.binary(max_size=200),
    ),
    max_size=5,
)
planted_layouts = st.tuples(
    st.sampled_from(["ok", "bad name", "ünï", "-x", "x" * 101, ".hidden"]),
    st.sampled_from(["1", "2", "0", "01", "99999999999", ""]),
    planted_files,
    st.sampled_from(["none", "labels-link", "model-link", "version-link", "model-dir-file"]),
)


def plant(model_dir: Path, layout: tuple[str, str, dict[str, bytes], str]) -> str:
    """Write one hand-planted model folder; answer its name."""
    import os
    import shutil

    name, version, files, link = layout
    for child in model_dir.iterdir():
        if child.name.startswith("p-") or child.name in ("ok", "bad name", "ünï", "-x",
                                                         "x" * 101, ".hidden"):
            if child.is_symlink() or child.is_file():
                child.unlink()
            else:
                shutil.rmtree(child)
    folder = model_dir / name / version if version else model_dir / name
    if link == "model-dir-file":
        (model_dir / name).write_bytes(b"not a folder")
        return name
    folder.mkdir(parents=True, exist_ok=True)
    for fname, data in files.items():
        (folder / fname).write_bytes(data)
    outside = model_dir.parent / "outside.txt"
    outside.write_text("outside-secret\n")
    if link == "labels-link":
        (folder / "labels.txt").unlink(missing_ok=True)
        os.symlink(outside, folder / "labels.txt")
    elif link == "model-link":
        (folder / "model.pb").unlink(missing_ok=True)
        os.symlink(outside, folder / "model.pb")
    elif link == "version-link" and version:
        os.symlink(model_dir.parent, model_dir / name / (version + "7"))
    return name


async def test_fuzz_hand_planted_repository_folders(
    tfaas: TFaaSCaller, seed_dir: Path, jp_http_port: int, jp_base_url: str, jp_serverapp,
    model_dir: Path,
) -> None:
    """Folders copied into the repository by hand, in any shape: the listing and each
    model's routes answer without a 5xx, and never show a file from outside."""
    import time

    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}tfaas/"
    token = jp_serverapp.identity_provider.token
    x = json.loads((seed_dir / "input.json").read_text())

    def call(method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
        request = urllib.request.Request(base + urllib.parse.quote(path), data=body,
                                         method=method,
                                         headers={"Authorization": f"token {token}"})
        try:
            with urllib.request.urlopen(request, timeout=120) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode("utf-8", "replace")

    codes: set[int] = set()

    def run() -> None:
        @settings(max_examples=60, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(layout=planted_layouts)
        @example(layout=("ok", "1", {"params.json": b'{"model": "model.pb"}',
                                     "model.pb": b"\x00no graph\xff" * 9}, "none"))
        def one(layout: tuple[str, str, dict[str, bytes], str]) -> None:
            name = plant(model_dir, layout)
            time.sleep(0.6)  # past the index's recheck interval
            for method, path, body in (
                ("GET", "models", None), (("GET", f"models/{name}", None)),
                ("GET", f"params/{name}", None),
                ("POST", "json", json.dumps({**x, "model": name}).encode()),
                ("POST", "json", json.dumps({**x, "model": "vk"}).encode()),
            ):
                code, text = call(method, path, body)
                # never a 5xx: a planted version no loader reads is a 409 naming it
                assert code < 500, (layout, method, path, code, text[:300])
                codes.add(code)
                if code == 409:
                    error = json.loads(text)["error"]
                    assert error.startswith(f"model {name!r} version ") and (
                        "cannot be loaded: " in error), (layout, error)
                assert "outside-secret" not in text, (layout, path)
            code, text = call("GET", "models")
            assert code == 200 and '"vk"' in text, (layout, text[:300])

        one()

    await asyncio.wait_for(asyncio.to_thread(run), timeout=800)
    assert {200, 404, 409} <= codes, codes  # listings, missing models, unloadable ones
