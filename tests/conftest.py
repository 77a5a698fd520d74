"""Shared fixtures: a real Jupyter server with the extension (pytest-jupyter), and
real TensorFlow models built in the test session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

# tests import their helpers from helpers.py; the fixtures here use some of them
from helpers import TFaaSCaller, load_example
from traitlets.config import Config

from tfaas_jupyter.client.api import TFaaSClient

# ci_noskip: with CI=true a skip is a failure (see tests/ci_noskip.py); tiers: each test's
# markers (unit, server, browser, hub, slow) from what it uses (see tests/tiers.py)
pytest_plugins = ("pytest_jupyter.jupyter_server", "ci_noskip", "tiers")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
            # this process hosts hundreds of servers one after another: a frozen heap
            # would keep each one's leftovers (test_heap_freeze.py turns it on)
            "TFaaSApp": {"model_dir": str(model_dir), "freeze_server_heap": False,
                         **tfaas_config},
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


@pytest.fixture
def tfaas(jp_fetch) -> TFaaSCaller:
    """Calls the test server's API (tornado, in the test's loop)."""
    return TFaaSCaller(jp_fetch)


@pytest.fixture
def tfaas_url(jp_fetch, jp_http_port: int, jp_base_url: str) -> str:
    """The tfaas base of the test server (``jp_fetch`` makes it listen)."""
    return f"http://localhost:{jp_http_port}{jp_base_url}tfaas/"


@pytest.fixture
def client(tfaas_url: str, jp_serverapp) -> Iterator[TFaaSClient]:
    """The Python client of the test server, with its token. Its calls block: a test
    runs them through ``helpers.in_thread`` (the server runs in the test's loop)."""
    c = TFaaSClient(tfaas_url, token=jp_serverapp.identity_provider.token, timeout=300)
    yield c
    c.close()


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
