"""The way out: GET tfaas/export gives SavedModels that TensorFlow loads and that compute
what the server computes, a models.config that parses as TF Serving's ModelServerConfig
and KServe manifests that parse as YAML."""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tfmodels
import yaml
from helpers import TFaaSCaller

from tfaas_jupyter.client.api import TFaaSClient

pytestmark = pytest.mark.timeout(900)

PROTOS = Path(__file__).parent / "protos"


def model_server_config(tmp_path: Path) -> Any:
    """The ModelServerConfig message class, compiled from tests/protos with grpc_tools."""
    out = tmp_path / "pb"
    out.mkdir()
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}",
                    f"--python_out={out}", str(PROTOS / "model_server_config.proto")],
                   check=True)
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("model_server_config_pb2").ModelServerConfig
    finally:
        sys.path.remove(str(out))


@pytest.fixture(scope="session")
def typed(tmp_path_factory: pytest.TempPathFactory) -> tfmodels.Built:
    return tfmodels.make_typed_savedmodel(tmp_path_factory.mktemp("typed_export"))


def sample(spec: dict[str, Any], rows: int, rng: np.random.Generator) -> np.ndarray:
    shape = [rows, *spec["shape"][1:]]
    kind = spec["datatype"]
    if kind == "INT64":
        return rng.integers(2**60, 2**62, size=shape, dtype=np.int64)
    if kind == "BOOL":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.normal(size=shape).astype(np.float32)


async def server_outputs(tfaas: TFaaSCaller, name: str, version: int,
                         inputs: dict[str, np.ndarray], meta: dict) -> dict[str, np.ndarray]:
    doc = {"inputs": [{"name": s["name"], "shape": list(inputs[s["name"]].shape),
                       "datatype": s["datatype"], "data": inputs[s["name"]].tolist()}
                      for s in meta["inputs"]]}
    reply = await tfaas.call("POST", f"v2/models/{name}/versions/{version}/infer",
                             json.dumps(doc).encode())
    assert reply.code == 200, reply.body
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"])
            for o in reply.json()["outputs"]}


async def test_export_loads_in_tensorflow(
    tfaas: TFaaSCaller, built: dict[str, tfmodels.Built], typed: tfmodels.Built,
    tmp_path: Path, jp_http_port: int, jp_base_url: str, jp_serverapp,
) -> None:
    import tensorflow as tf

    g = built["graphdef"]
    assert (await tfaas.upload_dir(g.path.parent, "graph")).code == 200
    assert (await tfaas.upload_dir(g.path.parent, "graph")).code == 200
    kf = built["keras_file"]
    reply = await tfaas.upload("kf", kf.path.read_bytes(), filename=kf.path.name)
    assert reply.code == 200, reply.body
    reply = await tfaas.upload("typed", typed.extra["tar"].read_bytes(), filename="t.tar.gz")
    assert reply.code == 200, reply.body
    assert (await tfaas.call("PUT", "models/graph/labels/stable", b'{"version": 1}')).code == 200

    reply = await tfaas.call("GET", "export")
    assert reply.code == 200, reply.body[:300]
    assert reply.headers["Content-Type"] == "application/gzip"
    root = tmp_path / "export"
    with tarfile.open(fileobj=io.BytesIO(reply.body), mode="r:gz") as tar:
        tar.extractall(root)

    # every version is a SavedModel whose serving_default computes what the server does
    rng = np.random.default_rng(9)
    found = sorted(p.relative_to(root / "models").as_posix()
                   for p in (root / "models").glob("*/*") if p.is_dir())
    assert found == ["graph/1", "graph/2", "kf/1", "typed/1"]
    for entry in found:
        name, version = entry.split("/")
        meta = (await tfaas.call("GET", f"v2/models/{name}/versions/{version}")).json()
        inputs = {s["name"]: sample(s, 5, rng) for s in meta["inputs"]}
        expected = await server_outputs(tfaas, name, int(version), inputs, meta)
        loaded = tf.saved_model.load(str(root / "models" / entry))
        got = loaded.signatures["serving_default"](
            **{k: tf.constant(v) for k, v in inputs.items()})
        assert sorted(got) == sorted(expected), entry
        for key, value in expected.items():
            actual = got[key].numpy()
            if value.dtype.kind in "iub":
                np.testing.assert_array_equal(actual, value.astype(actual.dtype))
            else:
                np.testing.assert_allclose(actual, value, rtol=1e-6, atol=1e-7)
    assets = root / "models" / "graph" / "1" / "assets"
    assert (assets / "labels.txt").read_text() == (g.path.parent / "labels.txt").read_text()
    assert json.loads((assets / "params.json").read_text())["inputNode"] == "x"

    # models.config: TF Serving's ModelServerConfig, labels included
    from google.protobuf import text_format

    config = text_format.Parse((root / "models.config").read_text(),
                               model_server_config(tmp_path)())
    configs = {c.name: c for c in config.model_config_list.config}
    assert sorted(configs) == ["graph", "kf", "typed"]
    assert configs["graph"].base_path == "/models/graph"
    assert configs["graph"].model_platform == "tensorflow"
    assert dict(configs["graph"].version_labels) == {"stable": 1}
    assert configs["kf"].model_version_policy.WhichOneof("policy_choice") == "all"

    # KServe manifests
    for name in ("graph", "kf", "typed"):
        manifest = yaml.safe_load((root / "kserve" / f"{name}.yaml").read_text())
        assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
        assert manifest["kind"] == "InferenceService"
        assert manifest["metadata"]["name"] == name
        model = manifest["spec"]["predictor"]["model"]
        assert model["modelFormat"]["name"] == "tensorflow"
        assert model["storageUri"].endswith(f"/{name}")

    # one model, through the client; errors
    client = TFaaSClient(f"http://localhost:{jp_http_port}{jp_base_url}tfaas/",
                         token=jp_serverapp.identity_provider.token, timeout=600)
    try:
        target = await asyncio.to_thread(client.export, tmp_path / "one", "typed")
    finally:
        client.close()
    assert sorted(p.name for p in (target / "models").iterdir()) == ["typed"]
    assert (target / "models" / "typed" / "1" / "saved_model.pb").is_file()
    assert "typed" in (target / "models.config").read_text()
    reply = await tfaas.call("GET", "export", params={"model": "nope"})
    assert reply.code == 404 and "not found" in reply.json()["error"]
    reply = await tfaas.call("GET", "export", params={"model": "../x"})
    assert reply.code == 400
    # nothing left behind in the repository's staging area
    staging = Path(jp_serverapp.web_app.settings["tfaas_service"].repository.root) / ".staging"
    assert not staging.exists() or not any(staging.iterdir())
