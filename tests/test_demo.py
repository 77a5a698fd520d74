"""The demo as a new user meets it: scripts/demo's environment (built by scripts/demo-env,
as the demo builds it: JupyterLab, ipykernel, tfaas-jupyter[tf,notebook]; not this test
environment), the demo notebook run cell by cell in a kernel of a server of that
environment, twice in a row, and scripts/demo itself started, called with the curl line it
prints, and stopped.

The environment is made once (minutes: TensorFlow) and reused across runs while it is
current (scripts/demo-env's stamp); ``TFAAS_DEMO_TEST_VENV`` puts it elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import nbformat
import numpy as np
import pytest
from servers import jupyter_server
from test_lab import launch, open_panel, seed_reference, sync_api
from test_lab_views import drawn_nodes, graph_frame, try_json
from test_notebook import KernelWS

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "tfaas-demo.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"

pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="session")
def demo_venv() -> Path:
    """The demo's environment, made (or brought up to date) by the demo's install step."""
    venv = Path(os.environ.get("TFAAS_DEMO_TEST_VENV") or ROOT / ".venv-demo-test")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo-env"), str(venv)],
                          capture_output=True, text=True, timeout=2000)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv


def _isolated_env(home: Path) -> dict[str, str]:
    """This environment without anything pointing at another server or Jupyter setup."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TFAAS_", "JUPYTERHUB_", "JPY_", "JUPYTER_", "VIRTUAL_ENV"))}
    env.update({"HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "config"),
                "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_RUNTIME_DIR": str(home / "rt"),
                "IPYTHONDIR": str(home / "ipython")})
    return env


def test_the_demo_notebook_runs_twice_in_the_demo_environment(
    demo_venv: Path, tmp_path: Path
) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    assert "close(" not in cells[-1]  # the widget stays visible at the end
    python = demo_venv / "bin" / "python"
    # as a user's server: nothing set to quiet TensorFlow (an empty value counts as unset)
    quiet_unset = {"TF_CPP_MIN_LOG_LEVEL": "", "GRPC_VERBOSITY": ""}
    with jupyter_server(tmp_path / "jupyter", python=str(python), timeout=300,
                        env=quiet_unset) as server:
        kernel = KernelWS(server, path="tfaas-demo.ipynb")
        try:
            where = kernel.run("import sys; print(sys.executable)").stdout.strip()
            assert Path(where) == python.absolute(), where  # the demo's kernel, not ours
            for run in (1, 2):  # Run All, then Run All again
                outputs = [kernel.run(code) for code in cells]
                upload = outputs[cells.index(next(c for c in cells if "%tfaas upload" in c))]
                assert upload.stdout.startswith(f"uploaded demo version {run} (savedmodel;"), (
                    run, upload)
                assert upload.stdout.count("\n") == 1 and upload.stderr == "", (run, upload)
                for out in outputs:
                    assert out.stderr == "", (run, out)  # no red block on Run All
                    assert "Assets written" not in out.stdout + out.stderr
                    assert "Traceback" not in out.stdout + out.stderr
                browser = outputs[cells.index(next(c for c in cells if "%tfaas browser" in c))]
                assert any(WIDGET in r for r in browser.results), browser
                curl = next(o.stdout for o in outputs if o.stdout.startswith("curl "))
                assert f"{server.url}tfaas/json" in curl
                assert [m["name"] for m in server.call("GET", "tfaas/models")] == ["demo"]
                assert server.call("GET", "tfaas/models/demo")["versions"] == [run]
            # the last cell's predictions are the kernel's model's
            kernel.run("_want = model(np.array([[1.0, 1.0, 0.0, 0.0]], 'float32')).numpy()[0]\n"
                       "np.testing.assert_allclose(browser.predictions, _want, rtol=1e-4, "
                       "atol=1e-5)\n"
                       "assert browser.last_error is None, browser.last_error")
        finally:
            kernel.close()


@pytest.fixture
def port_8888_taken() -> Iterator[None]:
    """Port 8888 in use (by us, unless something else holds it already)."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 8888))
        sock.listen()
    except OSError:
        pass  # taken already: as good
    yield
    sock.close()


def _read_until(proc: subprocess.Popen, end: str, timeout: float) -> str:
    """The process's output up to the line ``end`` (its whole output if it exits)."""
    text = ""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        text += line
        if line.strip() == end:
            return text
    raise AssertionError(f"scripts/demo did not print {end!r}:\n{text}")


def test_scripts_demo_starts_lab_with_the_notebook_and_vk(
    demo_venv: Path, tmp_path: Path, port_8888_taken: None
) -> None:
    env = {**_isolated_env(tmp_path / "home"), "VENV": str(demo_venv),
           "TFAAS_MODEL_DIR": str(tmp_path / "models"),
           "NOTEBOOK_DIR": str(tmp_path / "notebooks"), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([str(ROOT / "scripts" / "demo")], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        text = _read_until(proc, "Press Ctrl-C to stop.", timeout=600)
        moved = re.search(r"Port 8888 is taken; using port (\d+) instead\.", text)
        assert moved, text
        port = int(moved.group(1))
        assert "Creating" not in text and "Updating" not in text  # the environment reused
        lab = re.search(r"(http://127\.0\.0\.1:(\d+)/lab/tree/tfaas-demo\.ipynb\?token=(\w+))",
                        text)
        assert lab and int(lab.group(2)) == port, text
        token = lab.group(3)
        assert f"http://127.0.0.1:{port}/tfaas/?token={token}" in text

        # Lab and the notebook, with the token of the printed URL
        with urllib.request.urlopen(lab.group(1), timeout=60) as page:
            assert page.status == 200 and b"JupyterLab" in page.read()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/contents/tfaas-demo.ipynb",
            headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            doc = json.loads(answer.read())
        assert doc["type"] == "notebook"
        assert doc["content"]["cells"][1]["source"].startswith("%load_ext tfaas_jupyter")

        # the printed curl line works as it is, from anywhere
        line = next(ln.strip() for ln in text.splitlines() if ln.strip().startswith("curl "))
        out = subprocess.run(shlex.split(line) + ["-sS", "--fail"], capture_output=True,
                             text=True, timeout=300, cwd="/")
        assert out.returncode == 0, out.stderr
        # the seed's last bias puts the talk's input at a logit of 0.85
        np.testing.assert_allclose(json.loads(out.stdout), [1 / (1 + np.exp(-0.85))],
                                   atol=1e-3)
        # the script's own requests (is vk there? upload it) are no user errors
        request = urllib.request.Request(f"http://127.0.0.1:{port}/tfaas/status",
                                         headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert json.loads(answer.read())["errors"] == 0

        # Lab opens the notebook clean (not modified once its kernel runs), without
        # asking about Jupyter's news
        with sync_api.sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(lab.group(1), wait_until="domcontentloaded", timeout=180_000)
            page.locator(".jp-Notebook").wait_for(timeout=180_000)
            page.locator(".jp-Notebook-ExecutionIndicator[data-status=idle]").wait_for(
                timeout=180_000)
            page.wait_for_timeout(8000)  # Lab asks about the news a moment after start
            page.screenshot(path=str(tmp_path / "demo-lab.png"))
            assert page.locator(".lm-TabBar-tab.jp-mod-dirty").count() == 0
            toasts = " ".join(page.locator(".Toastify__toast").all_inner_texts())
            assert "news" not in toasts, toasts
            lab_views_work(page, lab.group(1))
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
    # stopped: the server is gone with the script
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the demo's server still answers on port {port}")


def lab_views_work(page, url: str) -> None:
    """The Lab front end's views in the demo's own Lab: the status-bar item, the panel
    with the demo's model, its graph drawn, and a request tried in the API explorer
    whose answer is the seed model's forward pass."""
    expect = sync_api.expect
    expect(page.locator('[data-tfaas="status-item"]')).to_be_visible(timeout=60_000)
    open_panel(page, url)
    panel = page.locator("#tfaas-sidebar")
    panel.locator('[data-model="vk"]').click()
    panel.locator('[data-tfaas="graph"]').click()
    assert drawn_nodes(graph_frame(page)) >= 2
    panel.locator('[data-tfaas="openapi"]').click()
    row = [round(0.01 * i, 3) for i in range(42)]
    answer = try_json(page.locator('[data-tfaas="explorer"]').last,
                      {"model": "vk", "values": row})
    assert answer == pytest.approx([seed_reference(row)], rel=1e-5), answer
