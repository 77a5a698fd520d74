"""tfaas_jupyter/server/openapi.json stays true: every route of routes() is described and every
described path is a route; real responses validate against its schemas."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import TFaaSCaller
from jsonschema import Draft202012Validator
from tfaas_jupyter.handlers import routes
from tfaas_jupyter.handlers.openapi import load_spec
from tornado.web import RequestHandler

pytestmark = pytest.mark.timeout(600)

_HTTP = ("get", "post", "put", "patch", "delete")


def openapi_path(pattern: str) -> str:
    path = pattern.removeprefix("/tfaas")
    path = re.sub(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)", r"{\1}", path)
    path = path.replace("/?", "/").replace("\\.", ".")
    return path or "/"


def implemented(handler: type) -> set[str]:
    return {m for m in _HTTP
            if getattr(handler, m, None) is not getattr(RequestHandler, m, None)}


def test_every_route_is_described_and_vice_versa() -> None:
    spec = load_spec()
    Draft202012Validator.check_schema({"components": spec["components"]})
    assert spec["openapi"].startswith("3.")
    described = {path: {m for m in ops if m in _HTTP} for path, ops in spec["paths"].items()}
    served = {openapi_path(p): implemented(h) for p, h in routes()}
    assert set(described) == set(served), (set(described) ^ set(served))
    for path, methods in served.items():
        assert described[path] == methods, (path, described[path], methods)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "200" in op["responses"], (path, method)
            names = set(re.findall(r"{(\w+)}", path))
            params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == params, (path, method, names, params)


def validate(doc: Any, schema_name: str) -> None:
    spec = load_spec()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(doc), key=str)
    assert not errors, f"{schema_name}: {errors[0].message} at {list(errors[0].path)}"


def response_schema(path: str, method: str, code: int) -> str:
    op = load_spec()["paths"][path][method]
    response = op["responses"][str(code)]
    if "$ref" in response:
        return "Error"
    ref = response["content"]["application/json"]["schema"]
    return ref["$ref"].rsplit("/", 1)[1] if "$ref" in ref else ""


async def test_real_responses_match_the_schemas(
    tfaas: TFaaSCaller, seed_dir: Path, jp_base_url: str
) -> None:
    async def check(method: str, url: str, path: str, body: bytes | None = None,
                    headers: dict[str, str] | None = None, code: int = 200) -> Any:
        reply = await tfaas.call(method, url, body, headers)
        assert reply.code == code, (method, url, reply.code, reply.body[:300])
        doc = reply.json()
        name = response_schema(path, method.lower(), code)
        if name:
            validate(doc, name)
        return doc

    reply = await tfaas.upload_dir(seed_dir, "vk")
    validate(reply.json(), response_schema("/upload", "post", 200))
    await tfaas.upload_dir(seed_dir, "vk")
    x = json.loads((seed_dir / "input.json").read_text())
    await check("POST", "json", "/json", json.dumps(x).encode())
    x2 = {**x, "values": [x["values"]] * 2}
    await check("POST", "predict/json", "/predict/json", json.dumps(x2).encode())
    await check("GET", "models", "/models")
    await check("POST", "models", "/models", b"{}")
    await check("GET", "models/vk", "/models/{name}")
    await check("GET", "params/vk", "/params/{name}")
    await check("GET", "params/vk/1", "/params/{name}/{version}")
    await check("POST", "params", "/params", b'{"name": "vk"}')
    await check("GET", "status", "/status")
    await check("GET", "models/nope", "/models/{name}", code=404)
    await check("POST", "json", "/json", b"{}", code=400)
    await check("DELETE", "delete/vk/1", "/delete/{name}/{version}")
    await check("DELETE", "delete/vk", "/delete/{name}")
    served = await check("GET", "openapi.json", "/openapi.json")
    assert served["servers"][0]["url"] == f"{jp_base_url}tfaas"
    assert served["paths"] == load_spec()["paths"]
