"""Shared fixtures: a real Jupyter server with the extension (pytest-jupyter), and
real TensorFlow models built in the test session."""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from tfaas_jupyter.client.forms import encode_multipart

# ci_noskip: with CI=true a skip is a failure (see tests/ci_noskip.py)
pytest_plugins = ("pytest_jupyter.jupyter_server", "ci_noskip")

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_example(name: str):
    """Import a script from examples/ as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def tfaas_config() -> dict[str, Any]:
    """Extra TFaaSApp traitlets for a test; override in a module to change limits."""
    return {}


@pytest.fixture
def jp_server_config(model_dir: Path, tfaas_config: dict[str, Any]) -> Config:
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"tfaas_jupyter": True},
                "allow_unauthenticated_access": False,
            },
            "TFaaSApp": {"model_dir": str(model_dir), **tfaas_config},
        }
    )


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny real models of tests/tfmodels.py, one of each format, built once."""
    import tfmodels

    root = tmp_path_factory.mktemp("built")
    return {
        "graphdef": tfmodels.make_graphdef(root / "graphdef"),
        "keras_export": tfmodels.make_keras_export(root / "export"),
        "module": tfmodels.make_module_savedmodel(root / "module"),
        "keras_file": tfmodels.make_keras_file(root / "kerasfile"),
        "int64_ids": tfmodels.make_int64_ids(root / "int64"),
    }


@pytest.fixture(scope="session")
def seed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The talk's 42-input 'vk' model, built by examples/make_seed_model.py."""
    target = tmp_path_factory.mktemp("seed")
    load_example("make_seed_model").build(target)
    return target


def seed_predict(values: Any) -> Any:
    """What the seed model 'vk' answers for ``values`` (one row or a list of rows), as
    JSON would carry it, computed by the seed script's numpy forward pass (no TensorFlow)."""
    import numpy as np

    rows = np.asarray(values, dtype=np.float32)
    out = load_example("make_seed_model").predict(rows.reshape(-1, rows.shape[-1]))
    return out[0].tolist() if rows.ndim == 1 else out.tolist()


def seed_upload_body(seed_dir: Path) -> tuple[bytes, str]:
    """The talk's curl upload of 'vk' as a multipart body: (body, content type)."""
    return encode_multipart(
        {"name": "vk"},
        {
            "params": ("params.json", (seed_dir / "params.json").read_bytes(), "application/json"),
            "model": ("model.pb", (seed_dir / "model.pb").read_bytes(), "application/octet-stream"),
            "labels": ("labels.txt", (seed_dir / "labels.txt").read_bytes(), "text/plain"),
        },
    )


@dataclass
class Reply:
    code: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class TFaaSCaller:
    """Calls ``{base_url}tfaas/...`` of the test server with the token, errors included."""

    fetch: Any

    async def call(self, method: str, path: str, body: bytes | None = None,
                   headers: dict[str, str] | None = None, **kwargs: Any) -> Reply:
        parts = ["tfaas", *[p for p in path.split("/") if p]] if path else ["tfaas", ""]
        response = await self.fetch(
            *parts, method=method, body=body, headers=headers or {},
            raise_error=False, allow_nonstandard_methods=True, **{"request_timeout": 180, **kwargs},
        )
        return Reply(response.code, response.headers, response.body)

    async def upload(self, name: str | None, model: bytes, *, params: dict | None = None,
                     labels: str | None = None, filename: str = "model.pb",
                     headers: dict[str, str] | None = None) -> Reply:
        fields = {"name": name} if name is not None else {}
        files = {"model": (filename, model, "application/octet-stream")}
        if params is not None:
            files["params"] = ("params.json", json.dumps(params).encode(), "application/json")
        if labels is not None:
            files["labels"] = ("labels.txt", labels.encode(), "text/plain")
        body, ctype = encode_multipart(fields, files)
        return await self.call("POST", "upload", body,
                               {"Content-Type": ctype, **(headers or {})})

    async def upload_dir(self, directory: Path, name: str) -> Reply:
        """Upload a folder written by tests/tfmodels.py or the seed script (form style)."""
        params = json.loads((directory / "params.json").read_text())
        labels = directory / "labels.txt"
        return await self.upload(
            name, (directory / params.get("model", "model.pb")).read_bytes(),
            params={**params, "name": name},
            labels=labels.read_text() if labels.exists() else None,
        )

    async def predict(self, doc: dict) -> Reply:
        return await self.call("POST", "json", json.dumps(doc).encode())


@pytest.fixture
def tfaas(jp_fetch) -> TFaaSCaller:
    return TFaaSCaller(jp_fetch)


def check_answer_schema(doc: Any, path: str, method: str = "get") -> None:
    """``doc`` is valid against the 200 JSON answer openapi.json gives for ``path``."""
    from jsonschema import Draft202012Validator
    from tfaas_jupyter.handlers.openapi import load_spec

    spec = load_spec()
    schema = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    validator = Draft202012Validator({**schema["schema"], "components": spec["components"]})
    errors = sorted(validator.iter_errors(doc), key=str)
    assert not errors, f"{path}: {errors[0].message} at {list(errors[0].path)}"


@pytest.fixture(scope="session")
def spark():
    """One Spark session (local[2]) for the whole test session: it is slow to start."""
    import sys

    from pyspark.sql import SparkSession

    # Spark's Python workers run this interpreter (the test environment), not python3
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[2]").appName("tfaas-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.ui.showConsoleProgress", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
