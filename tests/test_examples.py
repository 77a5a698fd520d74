"""The example notebooks of examples/ run top to bottom against a live server.

Each notebook runs in a kernel started by nbclient, from examples/ (as a user opens it
there), and finds the server through ``TFAAS_URL`` and ``JUPYTER_TOKEN`` in its
environment. The notebooks check what they show themselves (the server's predictions
against the model run in the kernel, onnxruntime for the ONNX model), so a wrong answer
fails the cell and the test. No cell may write to stderr (a red block on Run All:
TensorFlow's start-up chatter is kept out by ``%load_ext tfaas_jupyter``). Afterwards
the server holds no model and the repository no new file. ``examples/tfaas-demo.ipynb``
runs in tests/test_notebook.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import nbformat
import numpy as np
import pytest
from servers import ServerProcess, jupyter_server

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = ["quickstart.ipynb", "from-root.ipynb", "images.ipynb", "pytorch-onnx.ipynb",
             "root-to-cluster.ipynb"]
#: run elsewhere (tests/test_notebook.py)
ELSEWHERE = {"tfaas-demo.ipynb"}
#: what a notebook prints only when a step that may skip for users has run
MUST_PRINT = {"quickstart.ipynb": "class: signal probability: "}  # the C++ client
CELL_TIMEOUT = 600  # a C++ build or an ONNX conversion on a loaded 2-core machine

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with jupyter_server(tmp_path_factory.mktemp("examples"), base_url="/user/physicist/",
                        timeout=180) as srv:
        yield srv


def _repository_files() -> set[Path]:
    """The files under examples/ (bytecode caches aside): a notebook adds none."""
    return {p for p in EXAMPLES.rglob("*") if "__pycache__" not in p.parts}


def test_every_example_notebook_is_run() -> None:
    found = {p.name for p in EXAMPLES.glob("*.ipynb")}
    assert found == set(NOTEBOOKS) | ELSEWHERE


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_without_outputs(name: str) -> None:
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(not c.outputs and c.execution_count is None for c in code), name
    assert (EXAMPLES / name).stat().st_size < 40_000


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_against_a_live_server(name: str, server: ServerProcess,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    for variable in ("TFAAS_TOKEN", "JPY_API_TOKEN", "JUPYTERHUB_API_TOKEN", "JPY_PARENT_PID",
                     "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_SERVICE_PREFIX"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("TFAAS_URL", server.url)
    monkeypatch.setenv("JUPYTER_TOKEN", server.token)
    # as a user's kernel: nothing set to quiet TensorFlow but what the notebook does
    for variable in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    before = _repository_files()

    nb = nbformat.read(EXAMPLES / name, as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                   resources={"metadata": {"path": str(EXAMPLES)}}).execute()

    # Run All shows no red block: no cell wrote to stderr (TensorFlow's start-up
    # chatter included; the notebooks write nothing there themselves)
    red = [(i, o.get("text", "")) for i, cell in enumerate(nb.cells)
           for o in cell.get("outputs", [])
           if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    assert not red, red
    shown = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert f"{server.url} (TFAAS_URL)" in shown, shown
    printed = nbformat.writes(nb)
    assert MUST_PRINT.get(name, "") in printed
    assert server.token not in printed, "the token was shown in an output"
    assert server.call("GET", "tfaas/models") == []
    assert _repository_files() == before


def test_the_committed_onnx_file_is_what_make_pytorch_onnx_writes(tmp_path: Path) -> None:
    """pytorch-onnx.ipynb without torch loads examples/pytorch_jets.onnx: the script that
    wrote it writes the same graph again (weights up to floating-point summation order)."""
    import onnx
    import onnxmodels
    from helpers import load_example

    make = load_example("make_pytorch_onnx")
    fresh = make.build(tmp_path / "pytorch_jets.onnx")
    committed = EXAMPLES / "pytorch_jets.onnx"
    nodes, fresh_nodes = ([(n.op_type, list(n.input), list(n.output)) for n in
                           onnx.load(str(path)).graph.node] for path in (committed, fresh))
    assert nodes == fresh_nodes
    assert [op for op, _, _ in nodes] == ["Sub", "Div", "Gemm", "Relu", "Gemm", "Sigmoid"]
    assert committed.stat().st_size < 10_000
    rows = make.features(make.jet_events(200, seed=3))
    np.testing.assert_allclose(onnxmodels.run_onnxruntime(fresh, rows),
                               onnxmodels.run_onnxruntime(committed, rows), atol=1e-4)
