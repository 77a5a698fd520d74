"""The way out to Triton and KServe's V2 runtime: the export's ``triton/`` model repository
parses as Triton's own ``ModelConfig`` (tritonclient's model_config_pb2), every version's
SavedModel loads in TensorFlow and answers, through the signature the config names, what
the seed model's numpy forward pass computes; ``GET v2/models/NAME/config`` answers the
same configuration, also to tritonclient's ``get_model_config`` against a real server."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tfmodels
import tritonclient.http as httpclient
import yaml
from google.protobuf import json_format, text_format
from helpers import TFaaSCaller, load_example, seed_upload_body
from servers import jupyter_server
from tritonclient.grpc import model_config_pb2

from tfaas_jupyter.client.api import TFaaSClient

pytestmark = pytest.mark.timeout(900)

#: model_config.proto's DataType of each numpy dtype the test models use
TYPES = {"float32": "TYPE_FP32", "int64": "TYPE_INT64", "bool": "TYPE_BOOL"}


@pytest.fixture(scope="session")
def typed(tmp_path_factory: pytest.TempPathFactory) -> tfmodels.Built:
    return tfmodels.make_typed_savedmodel(tmp_path_factory.mktemp("typed_triton"))


@pytest.fixture(scope="session")
def signals(tmp_path_factory: pytest.TempPathFactory) -> tfmodels.Built:
    return tfmodels.make_signal_sensor(tmp_path_factory.mktemp("signals_triton"))


def parse_config(path: Path) -> Any:
    """config.pbtxt as Triton reads it: text format into model_config.proto's ModelConfig."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def from_json(doc: dict[str, Any]) -> Any:
    return json_format.ParseDict(doc, model_config_pb2.ModelConfig())


def seed_rows(n: int) -> np.ndarray:
    return np.random.default_rng(3).normal(size=(n, 42)).astype(np.float32)


def check_savedmodel(config: Any, folder: Path, inputs: dict[str, np.ndarray],
                     expected: dict[str, np.ndarray]) -> None:
    """The SavedModel at ``folder`` through the signature ``config`` names, fed and read by
    the config's tensor names, answers ``expected`` (exactly for integers and booleans)."""
    import tensorflow as tf

    signature = config.parameters["TF_SIGNATURE_DEF"].string_value
    loaded = tf.saved_model.load(str(folder))
    function = loaded.signatures[signature]
    assert sorted(t.name for t in config.input) == sorted(function.structured_input_signature[1])
    got = function(**{t.name: tf.constant(inputs[t.name]) for t in config.input})
    assert sorted(got) == sorted(t.name for t in config.output) == sorted(expected)
    for out in config.output:
        value = got[out.name].numpy()
        assert TYPES[value.dtype.name] == model_config_pb2.DataType.Name(out.data_type)
        want = expected[out.name]
        shape = list(out.reshape.shape) if out.HasField("reshape") else list(out.dims)
        assert list(value.shape[1:]) == shape
        if value.dtype.kind in "iub":
            np.testing.assert_array_equal(value, want)
        else:
            np.testing.assert_allclose(value, want, rtol=1e-6, atol=1e-7)


async def test_export_writes_a_triton_repository(
    tfaas: TFaaSCaller, seed_dir: Path, typed: tfmodels.Built, signals: tfmodels.Built,
    tmp_path: Path, jp_http_port: int, jp_base_url: str, jp_serverapp: Any,
) -> None:
    body, ctype = seed_upload_body(seed_dir)
    for _ in range(2):  # two versions of the seed model
        reply = await tfaas.call("POST", "upload", body, headers={"Content-Type": ctype})
        assert reply.code == 200, reply.body
    for name, built in (("typed", typed), ("signals", signals)):
        reply = await tfaas.upload(name, built.extra["tar"].read_bytes(), filename="m.tar.gz")
        assert reply.code == 200, reply.body

    reply = await tfaas.call("GET", "export")
    assert reply.code == 200, reply.body[:300]
    root = tmp_path / "export"
    with tarfile.open(fileobj=io.BytesIO(reply.body), mode="r:gz") as tar:
        # Triton's copies are hard links to models/: the archive holds each SavedModel once
        links = [m for m in tar.getmembers() if m.islnk()]
        assert links and all(m.name.startswith("triton/") for m in links)
        assert all(m.linkname.startswith("models/") for m in links)
        tar.extractall(root)
    triton = root / "triton"
    assert sorted(p.name for p in triton.iterdir()) == ["signals", "typed", "vk"]

    # the seed model: 42 float inputs, one float output, two versions, labels
    vk = parse_config(triton / "vk" / "config.pbtxt")
    assert vk.name == "vk" and vk.platform == "tensorflow_savedmodel"
    assert vk.version_policy.WhichOneof("policy_choice") == "all"
    assert vk.max_batch_size > 0 and vk.HasField("dynamic_batching")
    assert [(model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in vk.input] \
        == [("TYPE_FP32", [42])]
    assert [(model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in vk.output] \
        == [("TYPE_FP32", [1])]
    assert vk.output[0].label_filename == "labels.txt"
    assert (triton / "vk" / "labels.txt").read_text().split() \
        == (seed_dir / "labels.txt").read_text().split()
    assert sorted(p.name for p in (triton / "vk").iterdir() if p.is_dir()) == ["1", "2"]
    rows = seed_rows(9)
    expected = load_example("make_seed_model").predict(rows)
    for version in ("1", "2"):
        check_savedmodel(vk, triton / "vk" / version / "model.savedmodel",
                         {vk.input[0].name: rows}, {vk.output[0].name: expected})

    # three dtypes, int64 exact
    typed_config = parse_config(triton / "typed" / "config.pbtxt")
    assert {t.name: (model_config_pb2.DataType.Name(t.data_type), list(t.dims))
            for t in typed_config.input} == {
        "ids": ("TYPE_INT64", [3]), "x": ("TYPE_FP32", [tfmodels.N_IN]),
        "flag": ("TYPE_BOOL", [1])}
    rng = np.random.default_rng(5)
    values = {"ids": rng.integers(2**60, 2**62, size=(6, 3), dtype=np.int64),
              "x": rng.normal(size=(6, tfmodels.N_IN)).astype(np.float32),
              "flag": rng.integers(0, 2, size=(6, 1)).astype(bool)}
    want = dict(zip(("flag_not", "ids_next", "score"), typed.reference([values])))
    np.testing.assert_array_equal(want["ids_next"], values["ids"] + 1)  # independent of TF
    check_savedmodel(typed_config, triton / "typed" / "1" / "model.savedmodel", values, want)
    assert not any(t.label_filename for t in typed_config.output)

    # one value per row: dims [1] reshaped to a scalar, as Triton wants
    sig = parse_config(triton / "signals" / "config.pbtxt")
    total = next(t for t in sig.output if t.name == "total")
    assert list(total.dims) == [1] and total.HasField("reshape") and not total.reshape.shape
    signal = rng.normal(size=(4, 5)).astype(np.float32)
    sensor = rng.normal(size=(4, 2, 2)).astype(np.float32)
    check_savedmodel(sig, triton / "signals" / "1" / "model.savedmodel",
                     {"signal": signal, "sensor": sensor},
                     {"total": signal.sum(axis=1) + sensor.sum(axis=(1, 2)),
                      "peak": sensor.max(axis=2)})

    # GET v2/models/NAME[/versions/V]/config: the same configuration, as JSON
    for name in ("vk", "typed", "signals"):
        expected_config = parse_config(triton / name / "config.pbtxt")
        for path in (f"v2/models/{name}/config", f"v2/models/{name}/versions/1/config"):
            reply = await tfaas.call("GET", path)
            assert reply.code == 200, reply.body
            assert from_json(reply.json()) == expected_config, path
    reply = await tfaas.call("GET", "v2/models/nope/config")
    assert reply.code == 404 and "nope" in reply.json()["error"]

    # KServe on the Triton runtime, over V2
    for name in ("vk", "typed", "signals"):
        manifest = yaml.safe_load((root / "kserve" / f"{name}-triton.yaml").read_text())
        assert manifest["kind"] == "InferenceService"
        model = manifest["spec"]["predictor"]["model"]
        assert model["protocolVersion"] == "v2"
        assert model["modelFormat"]["name"] == "tensorflow"
        assert model["runtime"] == "kserve-tritonserver"
        assert model["storageUri"].endswith("/triton")

    # through the Python client: the hard links unpack; one version exports alone
    # (the server runs in this test's loop: the blocking client goes to a thread)
    client = TFaaSClient(f"http://localhost:{jp_http_port}{jp_base_url}tfaas/",
                         token=jp_serverapp.identity_provider.token, timeout=600)
    try:
        target = await asyncio.to_thread(client.export, tmp_path / "one", "vk", version=2)
    finally:
        client.close()
    assert sorted(p.name for p in (target / "triton" / "vk").iterdir() if p.is_dir()) == ["2"]
    saved = target / "triton" / "vk" / "2" / "model.savedmodel" / "saved_model.pb"
    assert saved.read_bytes() == (target / "models" / "vk" / "2" / "saved_model.pb").read_bytes()
    assert parse_config(target / "triton" / "vk" / "config.pbtxt") == vk


def test_tritonclient_get_model_config(tmp_path: Path, seed_dir: Path) -> None:
    """tritonclient's get_model_config against a real server, equal to the export's file."""
    with jupyter_server(tmp_path / "home", base_url="/user/ana/") as server:
        body, ctype = seed_upload_body(seed_dir)
        code, answer = server.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
        assert code == 200, answer
        client = httpclient.InferenceServerClient(
            url=f"127.0.0.1:{server.port}/user/ana/tfaas", network_timeout=120)
        auth = {"Authorization": f"token {server.token}"}
        try:
            config = client.get_model_config("vk", headers=auth)
            by_version = client.get_model_config("vk", "1", headers=auth)
            with pytest.raises(Exception):  # noqa: B017 - tritonclient's own error type
                client.get_model_config("vk")  # without the token
        finally:
            client.close()
        ours = TFaaSClient(f"http://127.0.0.1:{server.port}/user/ana/tfaas/",
                           token=server.token, timeout=600)
        try:
            target = ours.export(tmp_path / "export", "vk")
        finally:
            ours.close()
    exported = parse_config(target / "triton" / "vk" / "config.pbtxt")
    assert from_json(config) == exported == from_json(by_version)
    assert config["platform"] == "tensorflow_savedmodel"
    assert config["input"][0]["data_type"] == "TYPE_FP32" and config["input"][0]["dims"] == [42]
    assert json.loads(json.dumps(config)) == config
