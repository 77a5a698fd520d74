"""Property-based fuzzing of every endpoint of a live server: hypothesis drives real
HTTP requests (200 examples, derandomized); no 5xx, no hang, no traceback in a body."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import TFaaSCaller
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tfaas_jupyter.handlers import routes

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


def _fill(pattern: str, name: str, version: str) -> str:
    path = re.sub(r"\(\?P<name>(?:[^()]|\([^()]*\))*\)", lambda _m: name, pattern)
    path = re.sub(r"\(\?P<version>(?:[^()]|\([^()]*\))*\)", lambda _m: version, path)
    path = re.sub(r"\(\?P<label>(?:[^()]|\([^()]*\))*\)", lambda _m: version, path)
    return path.replace("/?", "/").replace("\\.", ".").lstrip("/")


@st.composite
def requests_(draw: st.DrawFn) -> tuple[str, str, bytes | None, dict[str, str]]:
    pattern, _handler = draw(st.sampled_from(routes()))
    path = _fill(pattern, draw(names), draw(versions))
    method = draw(st.sampled_from(["GET", "POST", "DELETE", "PUT", "HEAD"]))
    kind = draw(st.sampled_from(["none", "json", "predict", "bytes", "multipart"]))
    headers: dict[str, str] = {}
    body: bytes | None = None
    if kind == "json":
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


def run_fuzz(base: str, token: str, seen: dict[str, int]) -> None:
    @settings(max_examples=200, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(req=requests_())
    def one(req: tuple[str, str, bytes | None, dict[str, str]]) -> None:
        method, path, body, headers = req
        if method in ("POST", "PUT") and body is None:
            body = b""
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

    one()


async def test_fuzz_every_endpoint(tfaas: TFaaSCaller, seed_dir: Path, jp_http_port: int,
                                   jp_base_url: str, jp_serverapp, model_dir: Path) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    seen: dict[str, Any] = {}
    await asyncio.wait_for(
        asyncio.to_thread(run_fuzz, base, jp_serverapp.identity_provider.token, seen),
        timeout=800,
    )
    assert sum(seen.values()) >= 200, seen
    assert len(seen) >= 3, seen  # the fuzzer reached answers beyond errors
    assert not list((model_dir / ".staging").glob("*"))
    # still healthy
    x = (seed_dir / "input.json").read_bytes()
    await tfaas.upload_dir(seed_dir, "vk")
    assert (await tfaas.call("POST", "json", x)).code == 200
