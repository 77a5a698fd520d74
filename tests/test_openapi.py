"""The OpenAPI descriptions stay true.

* tfaas_jupyter/server/openapi.json describes every route of routes() and nothing else;
* real responses validate against the response schemas (inline ones too);
* every route answers HEAD, OPTIONS and 405 (with Allow) as RFC 9110 says;
* a model's own description (models/NAME[/versions/N]/openapi.json) has its exact inputs;
* schemathesis, run against a live server holding the suite's models, finds nothing wrong
  with either description.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import tfmodels
from helpers import TFaaSCaller, seed_predict, seed_upload_body
from jsonschema import Draft202012Validator
from servers import ServerProcess, jupyter_server
from tfaas_jupyter.handlers import routes
from tfaas_jupyter.handlers.base import allowed_methods
from tfaas_jupyter.handlers.openapi import load_spec

from tfaas_jupyter.client.forms import encode_multipart

pytestmark = pytest.mark.timeout(900)

_HTTP = ("get", "post", "put", "patch", "delete")
SPEC_FILE = "tfaas_jupyter/server/openapi.json"


def openapi_path(pattern: str) -> str:
    """A route's regex as an OpenAPI path: ``/models/(?P<name>...)`` -> ``/models/{name}``."""
    path = pattern.removeprefix("/tfaas")
    path = re.sub(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)", r"{\1}", path)
    path = path.replace("/?", "/").replace("\\.", ".").replace("(?::|%3[Aa])", ":")
    return path or "/"


def served_operations() -> dict[str, set[str]]:
    """Every route's OpenAPI path and the methods its handler implements."""
    return {openapi_path(p): {m.lower() for m in allowed_methods(h)} & set(_HTTP)
            for p, h in routes()}


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (``#/components/...``)."""
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def all_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from all_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_refs(value)


# -- the description against the route table ---------------------------------------


def test_every_route_is_described_and_vice_versa() -> None:
    spec = load_spec()
    assert spec["openapi"].startswith("3.1.")
    served = served_operations()
    described = {path: {m for m in ops if m in _HTTP} for path, ops in spec["paths"].items()}
    problems = []
    for path, methods in sorted(served.items()):
        missing = sorted(methods - described.get(path, set()))
        if missing:
            problems.append(f"route {path} answers {', '.join(m.upper() for m in missing)}: "
                            f"describe it under paths in {SPEC_FILE}")
    for path, methods in sorted(described.items()):
        extra = sorted(methods - served.get(path, set()))
        if extra:
            problems.append(f"{SPEC_FILE} describes {', '.join(m.upper() for m in extra)} "
                            f"{path}, which no route answers (handlers/__init__.py routes())")
    assert not problems, "\n".join(problems)

    operation_ids = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path} in {SPEC_FILE}"
            assert "200" in op["responses"], f"{where}: no 200 response"
            assert op.get("operationId"), f"{where}: no operationId"
            operation_ids.append(op["operationId"])
            names = set(re.findall(r"{(\w+)}", path))
            params = {resolve(spec, p)["name"] for p in op.get("parameters", [])
                      if resolve(spec, p)["in"] == "path"}
            assert names == params, f"{where}: path parameters {names} declared as {params}"
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"
    for ref in set(all_refs(spec)):
        assert ref.startswith("#/components/"), ref
        resolve(spec, {"$ref": ref})  # every reference resolves
    Draft202012Validator.check_schema({"$defs": spec["components"]["schemas"]})


# -- real responses against the schemas ------------------------------------------------


def check_response(spec: dict[str, Any], path: str, method: str, code: int,
                   content_type: str, body: bytes) -> None:
    """The response is declared for the operation and its body validates against the
    declared schema, inline or shared."""
    op = spec["paths"][path][method]
    assert str(code) in op["responses"], f"{method.upper()} {path}: {code} is not declared"
    response = resolve(spec, op["responses"][str(code)])
    media = content_type.split(";")[0].strip()
    content = response.get("content") or {}
    assert media in content, f"{method.upper()} {path} {code}: {media} not in {list(content)}"
    if media != "application/json":
        return
    pointer = "/".join(p.replace("~", "~0").replace("/", "~1") for p in
                       ("paths", path, method, "responses", str(code)))
    schema_ref = f"#/{pointer}"
    if "$ref" in op["responses"][str(code)]:
        schema_ref = op["responses"][str(code)]["$ref"]
    schema = {**spec, "$ref": f"{schema_ref}/content/application~1json/schema"}
    errors = sorted(Draft202012Validator(schema).iter_errors(json.loads(body)), key=str)
    assert not errors, (f"{method.upper()} {path} {code}: {errors[0].message} "
                        f"at {list(errors[0].path)}")


async def test_real_responses_match_the_schemas(
    tfaas: TFaaSCaller, seed_dir: Path, jp_base_url: str, built: dict[str, tfmodels.Built]
) -> None:
    spec = load_spec()

    async def check(method: str, url: str, path: str, body: bytes | None = None,
                    headers: dict[str, str] | None = None, code: int = 200,
                    **kwargs: Any) -> Any:
        reply = await tfaas.call(method, url, body, headers, **kwargs)
        assert reply.code == code, (method, url, reply.code, reply.body[:300])
        check_response(spec, path, method.lower(), code, reply.headers["Content-Type"],
                       reply.body)
        return reply.json() if "json" in reply.headers["Content-Type"] else reply.body

    body, ctype = seed_upload_body(seed_dir)
    await check("POST", "upload", "/upload", body, {"Content-Type": ctype})
    await check("POST", "upload", "/upload", body, {"Content-Type": ctype})
    x = json.loads((seed_dir / "input.json").read_text())
    one = await check("POST", "json", "/json", json.dumps(x).encode())
    np.testing.assert_allclose(one, seed_predict(x["values"]), rtol=1e-5)
    x2 = {**x, "values": [x["values"]] * 2}
    await check("POST", "predict/json", "/predict/json", json.dumps(x2).encode())
    models = await check("GET", "models", "/models")
    assert [m["name"] for m in models] == ["vk"]
    await check("POST", "models", "/models", b"{}")
    await check("GET", "models/vk", "/models/{name}")
    await check("GET", "params/vk", "/params/{name}")
    await check("GET", "params", "/params", params={"model": "vk"})
    await check("GET", "params/vk/1", "/params/{name}/{version}")
    await check("POST", "params", "/params", b'{"name": "vk"}')
    await check("POST", "params/vk/2", "/params/{name}/{version}", b"{}")
    await check("GET", "status", "/status")
    await check("GET", "metrics", "/metrics")
    await check("GET", "models/nope", "/models/{name}", code=404)
    await check("POST", "json", "/json", b"{}", code=400)
    await check("POST", "params/vk/7", "/params/{name}/{version}", b"{}", code=404)
    await check("POST", "json", "/json", json.dumps({**x, "values": [[1.0] * 3] * 100001})
                .encode(), code=413)
    await check("GET", "models/vk/openapi.json", "/models/{name}/openapi.json")
    await check("GET", "models/vk/versions/1/openapi.json",
                "/models/{name}/versions/{version}/openapi.json")
    await check("GET", "models/vk/versions/0/openapi.json",
                "/models/{name}/versions/{version}/openapi.json", code=400)
    await check("DELETE", "delete/vk/1", "/delete/{name}/{version}")
    await check("DELETE", "delete/vk", "/delete/{name}")
    await check("GET", "", "/")
    served = await check("GET", "openapi.json", "/openapi.json")
    assert served["servers"][0]["url"] == f"{jp_base_url}tfaas"
    assert served["paths"] == load_spec()["paths"]
    # this server's limits are stated
    assert served["components"]["schemas"]["Rows"]["maxItems"] == 100000
    assert "100000 rows per prediction request" in served["info"]["description"]


# -- HEAD, OPTIONS and 405 ----------------------------------------------------------


def concrete(path: str) -> str:
    return (path.replace("{name}", "vk").replace("{version}", "1").replace("{label}", "stable")
            .replace("{key_name}", "grid-job").replace("{region}", "rows")
            .replace("{asset}", "view.js").lstrip("/"))


async def test_every_route_answers_head_options_and_405_with_allow(
    tfaas: TFaaSCaller, seed_dir: Path
) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    checked = 0
    for pattern, handler in routes():
        path = openapi_path(pattern)
        url = concrete(path)
        allow = allowed_methods(handler)
        assert "OPTIONS" in allow and ("HEAD" in allow) == ("GET" in allow), (path, allow)
        for method in ("TRACE", "PUT", "PATCH", "DELETE", "POST", "GET"):
            if method in allow:
                continue
            reply = await tfaas.call(method, url, b"" if method in ("PUT", "PATCH", "POST")
                                     else None)
            assert reply.code == 405, (method, path, reply.code, reply.body[:200])
            assert reply.headers["Allow"] == ", ".join(allow), (method, path)
            if path != "/":  # the page's errors are Jupyter's HTML pages
                assert reply.json()["error"], (method, path)
            checked += 1
        options = await tfaas.call("OPTIONS", url)
        assert options.code in (200, 204) and options.headers["Allow"] == ", ".join(allow)
        if "GET" in allow:
            got = await tfaas.call("GET", url)
            head = await tfaas.call("HEAD", url)
            assert head.code == got.code, (path, head.code, got.code)
            assert head.body == b""
            assert head.headers["Content-Type"] == got.headers["Content-Type"], path
    assert checked > 2 * len(routes())
    # the CORS preflight stays Jupyter's: no credentials needed, no data given
    preflight = await tfaas.call("OPTIONS", "models", headers={
        "Authorization": "", "Origin": "http://elsewhere.example",
        "Access-Control-Request-Method": "GET"})
    assert preflight.code in (200, 204) and preflight.body == b""
    assert "Access-Control-Allow-Methods" in preflight.headers
    assert preflight.headers["Allow"] == "GET, HEAD, POST, OPTIONS"
    # HEAD needs the login as GET does
    anonymous = await tfaas.call("HEAD", "models", headers={"Authorization": ""})
    assert anonymous.code == 403


# -- a model's own description -------------------------------------------------------


async def test_model_descriptions_have_the_exact_inputs(
    tfaas: TFaaSCaller, seed_dir: Path, built: dict[str, tfmodels.Built], tmp_path: Path
) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    archive = tmp_path / "module.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(built["module"].path, arcname="module")
    reply = await tfaas.upload("multi", archive.read_bytes(), filename="module.tar.gz")
    assert reply.code == 200, reply.body

    vk = (await tfaas.call("GET", "models/vk/openapi.json")).json()
    Draft202012Validator.check_schema({"$defs": vk["components"]["schemas"]})
    assert set(vk["paths"]) == {"/json", "/predict/json", "/proto", "/predict/proto"}
    row = vk["components"]["schemas"]["Row"]
    assert row["minItems"] == row["maxItems"] == 42 and row["items"]["type"] == "number"
    request = vk["components"]["schemas"]["PredictRequest"]
    # multi, the last uploaded through the form, is the default: vk must be named
    assert request["properties"]["model"] == {"type": "string", "enum": ["vk"]}
    assert request["required"] == ["values", "model"]  # latest: the version may be left out
    example = vk["paths"]["/json"]["post"]["requestBody"]["content"]["application/json"][
        "example"]
    assert example == {"model": "vk", "values": [0.0] * 42}  # as the tfaas/ page prints it
    out = vk["components"]["schemas"]["OutputRow"]
    assert out["minItems"] == out["maxItems"] == 1
    # the example is answered, and the answer validates against the output schema
    answer = await tfaas.predict(example)
    assert answer.code == 200
    np.testing.assert_allclose(answer.json(), seed_predict(example["values"]), rtol=1e-5)
    check_response(vk, "/json", "post", 200, "application/json", answer.body)
    # an older version: its description requires the version
    old = (await tfaas.call("GET", "models/vk/versions/1/openapi.json")).json()
    assert old["components"]["schemas"]["PredictRequest"]["required"] == [
        "values", "model", "version"]
    assert "/proto" not in old["paths"]  # a Row cannot name a version
    assert (await tfaas.call("GET", "models/vk/versions/9/openapi.json")).code == 404
    assert (await tfaas.call("GET", "models/nope/openapi.json")).code == 404

    page = (await tfaas.call("GET", "")).body.decode()
    assert 'tfaas/models/vk/openapi.json">openapi.json</a>' in page  # linked from the page

    multi = (await tfaas.call("GET", "models/multi/openapi.json")).json()
    row = multi["components"]["schemas"]["Row"]
    assert row["minItems"] == row["maxItems"] == 7  # a_bias [None, 1] then b_feat [None, 6]
    assert "a_bias float32 [None, 1], b_feat float32 [None, 6]" in row["description"]
    assert multi["components"]["schemas"]["OutputRow"]["maxItems"] == 2


# -- schemathesis against a live server ------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, seed_dir: Path,
         built: dict[str, tfmodels.Built]) -> Iterator[ServerProcess]:
    """A server holding the suite's models: the seed, a model with two versions, a
    SavedModel with two inputs and two outputs, a Keras export, an image classifier."""
    home = tmp_path_factory.mktemp("schemathesis")
    image_path, _ = tfmodels.make_image_keras(home / "img", classes=3, seed=5)
    archives = {}
    for name in ("module", "keras_export"):
        archives[name] = home / f"{name}.tar.gz"
        with tarfile.open(archives[name], "w:gz") as tar:
            tar.add(built[name].path, arcname=name)
    with jupyter_server(home / "server") as server:

        def upload(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> None:
            body, ctype = encode_multipart(fields, files)
            code, answer = server.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
            assert code == 200, answer

        seed_body, ctype = seed_upload_body(seed_dir)
        assert server.request("POST", "tfaas/upload", seed_body, {"Content-Type": ctype})[0] == 200
        binary = "application/octet-stream"
        # two versions that take different inputs: a request leaving out the version (the
        # latest answers) is then refused, as version 1's description says it must be
        for folder in (built["graphdef"].path.parent, seed_dir):
            params = {**json.loads((folder / "params.json").read_text()), "name": "versioned"}
            upload({"name": "versioned"}, {
                "model": ("model.pb", (folder / "model.pb").read_bytes(), binary),
                "params": ("params.json", json.dumps(params).encode(), "application/json")})
        upload({"name": "multi"}, {"model": ("m.tar.gz", archives["module"].read_bytes(),
                                             binary)})
        upload({"name": "exported"}, {"model": ("e.tar.gz",
                                                archives["keras_export"].read_bytes(), binary)})
        upload({"name": "img"}, {"model": ("img.keras", image_path.read_bytes(), binary),
                                 "labels": ("labels.txt", b"a\nb\nc\n", "text/plain")})
        yield server


def schemathesis(server: ServerProcess, spec_path: str, *args: str) -> None:
    """Run ``st run`` on one of the server's descriptions: a few derandomized examples per
    operation, every phase; fails with schemathesis's report when it finds anything."""
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [str(st), "run", server.tfaas + spec_path, "-H", f"Authorization: token {server.token}",
         "--max-examples", "3", "--generation-deterministic", "--workers", "1",
         "--generation-with-security-parameters", "false", "--no-color",
         "--request-timeout", "120", "--checks", "all", *args],
        capture_output=True, text=True, timeout=600, cwd=server.home,  # its cache goes there
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"schemathesis on {spec_path}:\n{report[-8000:]}"
    assert re.search(r"\d+ generated, \d+ passed", report), report[-3000:]


#: JSON Schema cannot say which bytes are a valid protobuf Row or image, so their
#: generated "valid" bodies are random bytes the server rightly refuses: for those
#: operations the check that valid data is accepted is left out (all others run).
BINARY_OPERATIONS = ("--include-path-regex", "proto|image",
                     "--exclude-checks", "positive_data_acceptance")


@pytest.mark.parametrize("model", ["vk", "multi", "exported", "img", "versioned/versions/1",
                                   "versioned/versions/2"])
def test_schemathesis_on_each_model_description(live: ServerProcess, model: str) -> None:
    spec = f"models/{model}/openapi.json"
    schemathesis(live, spec, "--include-path-regex", "json")
    code, doc = live.json("GET", "tfaas/" + spec)
    if any(re.search("proto|image", path) for path in doc["paths"]):
        schemathesis(live, spec, *BINARY_OPERATIONS)


def test_schemathesis_on_the_global_description(live: ServerProcess) -> None:
    # After the per-model runs: this one may delete models. Every check but the
    # acceptance of valid data, which needs a model that takes the generated values.
    schemathesis(live, "openapi.json", "--exclude-checks", "positive_data_acceptance")
