"""Shared fixtures: a real Jupyter server with the extension (pytest-jupyter), and
real TensorFlow models built in the test session."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

# the API caller lives in helpers.py; tests may still import it from here
from helpers import Reply, TFaaSCaller  # noqa: F401
from traitlets.config import Config

from tfaas_jupyter.client.forms import encode_multipart

# ci_noskip: with CI=true a skip is a failure (see tests/ci_noskip.py); tiers: each test's
# markers (unit, server, browser, hub, slow) from what it uses (see tests/tiers.py)
pytest_plugins = ("pytest_jupyter.jupyter_server", "ci_noskip", "tiers")

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
