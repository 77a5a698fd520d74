"""The extension as a whole: restarts, the supervised worker, packaging, no TF in the server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT, TFaaSCaller, seed_upload_body
from servers import jupyter_server, listed_lines

pytestmark = pytest.mark.timeout(600)


def test_models_survive_a_restart_under_a_hub_base_url(tmp_path: Path, seed_dir: Path) -> None:
    model_dir = tmp_path / "models"
    body, ctype = seed_upload_body(seed_dir)
    doc = json.loads((seed_dir / "input.json").read_text())
    with jupyter_server(tmp_path / "one", model_dir=model_dir, base_url="/user/alice/") as srv:
        code, _ = srv.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
        assert code == 200
        code, first = srv.json("POST", "tfaas/json", doc)
        assert code == 200
        worker = srv.worker_pid()
        assert worker
    # a stopped server leaves no TensorFlow process behind
    for _ in range(100):
        if not _alive(worker):
            break
        import time

        time.sleep(0.1)
    assert not _alive(worker)
    with jupyter_server(tmp_path / "two", model_dir=model_dir, base_url="/user/alice/") as srv:
        code, models = srv.json("GET", "tfaas/models")
        assert [m["name"] for m in models] == ["vk"]
        code, again = srv.json("POST", "tfaas/json", doc)
        assert code == 200 and again == first


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


async def test_worker_killed_mid_request(tfaas: TFaaSCaller, seed_dir: Path, jp_fetch,
                                         jp_serverapp) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    doc = json.loads((seed_dir / "input.json").read_text())
    expected = (await tfaas.predict(doc)).json()
    status = (await tfaas.call("GET", "status")).json()
    pid = status["worker"]["pid"]
    os.kill(pid, signal.SIGSTOP)  # the request below is then surely in flight
    try:
        pending = asyncio.ensure_future(tfaas.predict(doc))
        service = jp_serverapp.web_app.settings["tfaas_service"]
        for _ in range(6000):  # until the server holds it (not a guess at how long that takes)
            if service.in_flight:
                break
            await asyncio.sleep(0.01)
        assert service.in_flight == 1
        await asyncio.sleep(0.1)  # the stopped worker cannot answer, however long this is
        assert not pending.done()
        # the notebook server stays responsive meanwhile
        contents = await jp_fetch("api", "contents", request_timeout=10)
        assert contents.code == 200
    finally:
        os.kill(pid, signal.SIGKILL)
    reply = await pending
    assert reply.code == 503, reply.body
    assert "worker" in reply.json()["error"]
    # the next request is served by a new worker
    again = await tfaas.predict(doc)
    assert again.code == 200 and again.json() == expected
    status = (await tfaas.call("GET", "status")).json()
    assert status["worker"]["pid"] != pid
    assert status["worker"]["restarts"] == 1  # the one kill above


def write_kernelspec(data_dir: Path, name: str) -> None:
    """A kernel running this Python, whose environment marks it (``TFAAS_KERNELSPEC_MARK``)."""
    spec = data_dir / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"{name} (LCG-like)", "language": "python",
        "env": {"TFAAS_KERNELSPEC_MARK": name},
    }))


@pytest.fixture
def tfaas_config(request, tmp_path_factory, jp_data_dir: Path, monkeypatch) -> dict:
    if request.node.name == "test_without_tensorflow_the_python3_kernel_runs_the_worker":
        # SWAN: the server's Python has no TensorFlow, the python3 kernel's has
        import tfaas_jupyter.server.app

        monkeypatch.setattr(tfaas_jupyter.server.app, "_has_tensorflow", lambda: False)
        write_kernelspec(jp_data_dir, "python3")
        return {}
    if request.node.name == "test_a_missing_kernelspec_is_reported_not_fatal":
        return {"worker_kernelspec": "no-such-kernel"}
    if request.node.name == "test_worker_runs_with_a_kernelspec_python":
        # As in SWAN: the worker takes a kernel's Python and environment.
        write_kernelspec(jp_data_dir, "lcg")
        return {"worker_kernelspec": "lcg"}
    if request.node.name == "test_a_hung_worker_times_out_and_is_replaced":
        return {"request_timeout": 3.0}
    if request.node.name != "test_extension_loads_without_a_working_worker":
        return {}
    # A Python without TensorFlow (nor numpy): a bare venv, isolated from PYTHONPATH.
    root = tmp_path_factory.mktemp("notf")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")],
                   check=True)
    wrapper = root / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{root / "venv" / "bin" / "python"}" -I "$@"\n')
    wrapper.chmod(0o755)
    return {"worker_python": str(wrapper)}


async def test_extension_loads_without_a_working_worker(
    tfaas: TFaaSCaller, seed_dir: Path
) -> None:
    assert (await tfaas.call("GET", "models")).json() == []
    status = await tfaas.call("GET", "status")
    assert status.code == 200
    reply = await tfaas.upload_dir(seed_dir, "vk")
    assert reply.code == 503, (await tfaas.call("GET", "status")).json()["worker"]
    assert "numpy" in reply.json()["error"] or "tensorflow" in reply.json()["error"].lower()
    status = (await tfaas.call("GET", "status")).json()
    assert status["worker"]["state"] in ("failed", "stopped")
    assert status["worker"]["last_error"]
    assert (await tfaas.call("GET", "models")).json() == []


def test_generated_proto_module_is_reproducible(tmp_path: Path) -> None:
    # protoc runs in its own process: it must not share one with TensorFlow's protobuf.
    subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), str(tmp_path)],
                   check=True, timeout=120)
    produced = tmp_path / "tfaas_pb2.py"
    assert produced.read_bytes() == (ROOT / "tfaas_jupyter" / "tfaas_pb2.py").read_bytes()


def test_wheel_installs_and_enables_the_extension(tmp_path: Path) -> None:
    version = json.loads((ROOT / "labextension" / "package.json").read_text())["version"]
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True, timeout=600,
    )
    (wheel,) = wheels.glob("tfaas_jupyter-*.whl")
    assert wheel.name.startswith(f"tfaas_jupyter-{version}-"), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert "tfaas_jupyter/handlers/__init__.py" in names
    assert "tfaas_jupyter/worker/main.py" in names
    assert not any(n.startswith("handlers/") for n in names), names
    assert any(n.endswith("etc/jupyter/jupyter_server_config.d/tfaas_jupyter.json") for n in names)
    # the version, written once (labextension/package.json), reaches the Python side
    assert f"__version__ = VERSION = {version!r}" in zipfile.ZipFile(wheel).read(
        "tfaas_jupyter/_version.py").decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    # the JupyterLab side panel, prebuilt: Lab finds it in share/jupyter/labextensions
    share = f"tfaas_jupyter-{version}.data/data/share/jupyter/labextensions/tfaas-jupyter/"
    assert share + "package.json" in names and share + "install.json" in names, names
    assert any(n.startswith(share + "static/remoteEntry.") for n in names), names
    built = json.loads(zipfile.ZipFile(wheel).read(share + "package.json"))
    assert built["name"] == "tfaas-jupyter"
    assert built["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    # the words the widget and the panel share: in the package, and bundled in the panel
    assert "tfaas_jupyter/client/vocabulary.json" in names
    words = json.loads(zipfile.ZipFile(wheel).read("tfaas_jupyter/client/vocabulary.json"))
    bundled = "".join(zipfile.ZipFile(wheel).read(n).decode() for n in names
                      if n.startswith(share + "static/") and n.endswith(".js"))
    assert f'"models_empty":"{words["models_empty"]}"' in bundled
    # A fresh venv that borrows the test venv's packages (a path, not its .pth hooks)
    # and gets the wheel installed as a user would: pip install, nothing else, and no
    # Node.js on its PATH (the panel comes prebuilt).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    borrowed = [p for p in sys.path if p.endswith("site-packages")]
    (site / "borrowed.pth").write_text("\n".join(borrowed) + "\n")
    python = str(venv / "bin" / "python")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q",
         str(wheel)], check=True, timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "PYTHONPATH"))}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "cfg")
    env["PATH"] = str(venv / "bin")
    assert shutil.which("node", path=env["PATH"]) is None
    assert shutil.which("jlpm", path=env["PATH"]) is None
    out = subprocess.run(
        [python, "-m", "jupyter_server.extension.serverextension", "list"],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )
    text = out.stdout + out.stderr
    assert str(venv / "etc" / "jupyter") in text, text
    assert listed_lines(text, r"tfaas_jupyter enabled") == ["tfaas_jupyter enabled"], text
    assert listed_lines(text, rf"tfaas_jupyter {re.escape(version)} OK"), text
    assert not listed_lines(text, r"tfaas_jupyter .*(disabled|X|problem).*"), text
    where = subprocess.run(
        [python, "-c", "import tfaas_jupyter.handlers as h; print(h.__file__)"],
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path,
    )
    assert where.stdout.strip().startswith(str(site)), where
    # the widget's words load from the installed package, not the source tree
    words = subprocess.run(
        [python, "-c", "from tfaas_jupyter.client import vocabulary as v; "
                       "print(v.__file__, v.word('models'))"],
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path,
    )
    assert words.stdout.startswith(str(site)) and words.stdout.split()[-1] == "Models", words
    labext = subprocess.run(
        [python, "-m", "jupyterlab.labextensions", "list"],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )
    text = labext.stdout + labext.stderr
    assert str(venv / "share" / "jupyter" / "labextensions") in text, text
    expected = rf"tfaas-jupyter v{re.escape(version)} enabled OK \(python, tfaas-jupyter\)"
    assert len(listed_lines(text, expected)) == 1, text
    assert len(listed_lines(text, r"tfaas-jupyter .*")) == 1, text


async def test_worker_runs_with_a_kernelspec_python(
    tfaas: TFaaSCaller, seed_dir: Path, jp_serverapp
) -> None:
    worker = jp_serverapp.web_app.settings["tfaas_service"].worker
    assert worker.python == sys.executable
    assert worker.env["TFAAS_KERNELSPEC_MARK"] == "lcg"
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    doc = json.loads((seed_dir / "input.json").read_text())
    assert (await tfaas.predict(doc)).code == 200
    status = (await tfaas.call("GET", "status")).json()
    assert status["worker"]["python"] == sys.executable
    assert status["tensorflow"]


async def test_a_hung_worker_times_out_and_is_replaced(
    tfaas: TFaaSCaller, seed_dir: Path
) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    doc = json.loads((seed_dir / "input.json").read_text())
    expected = (await tfaas.predict(doc)).json()
    pid = (await tfaas.call("GET", "status")).json()["worker"]["pid"]
    os.kill(pid, signal.SIGSTOP)  # a hang: TensorFlow stuck in a call
    try:
        reply = await tfaas.predict(doc)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert reply.code == 504, reply.body
    assert "did not answer within 3 s" in reply.json()["error"]
    again = await tfaas.predict(doc)
    assert again.code == 200 and again.json() == expected


async def test_without_tensorflow_the_python3_kernel_runs_the_worker(
    tfaas: TFaaSCaller, seed_dir: Path, jp_serverapp
) -> None:
    worker = jp_serverapp.web_app.settings["tfaas_service"].worker
    assert worker.env["TFAAS_KERNELSPEC_MARK"] == "python3"
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200


async def test_a_missing_kernelspec_is_reported_not_fatal(
    tfaas: TFaaSCaller, seed_dir: Path
) -> None:
    assert (await tfaas.call("GET", "models")).code == 200
    reply = await tfaas.upload_dir(seed_dir, "vk")
    assert reply.code == 503 and "no-such-kernel" in reply.json()["error"], reply.body
    status = (await tfaas.call("GET", "status")).json()
    assert "no-such-kernel" in status["worker"]["last_error"]
