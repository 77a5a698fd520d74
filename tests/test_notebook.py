"""Notebooks as users run them: a real ``jupyter server`` subprocess (base_url
``/user/test/``, a token, isolated runtime dirs), a kernel it starts through its REST
API, and cells executed over the kernel websocket (Jupyter messaging v5). The kernel
finds its server with no configuration, as in JupyterLab.

Also: the same from nbclient (a kernel not started by the server) with
``%tfaas connect``. The example notebook runs in test_demo.py, in the demo's
environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from servers import ServerProcess, jupyter_server

BASE_URL = "/user/test/"
CELL_TIMEOUT = 300.0  # kernel start + TensorFlow import on a loaded 2-core machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with jupyter_server(
        tmp_path_factory.mktemp("jupyter"), base_url=BASE_URL, timeout=180,
        env={"PYTHONUNBUFFERED": "1"},
    ) as srv:
        yield srv


@dataclass
class Result:
    stdout: str = ""
    stderr: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)  # execute_result data
    displays: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    status: str = ""

    @property
    def text(self) -> str:
        """The text/plain of the last execute_result."""
        return self.results[-1].get("text/plain", "") if self.results else ""

    def check(self, code: str) -> Result:
        if self.error or self.status != "ok":
            raise AssertionError(
                f"cell failed: {code!r}\nstatus {self.status}\nerror {self.error}\n"
                f"stderr {self.stderr}\nstdout {self.stdout}"
            )
        return self


class KernelWS:
    """A kernel of ``server`` (started through POST /api/sessions) driven over its
    websocket with the legacy JSON messages of jupyter_server."""

    def __init__(self, server: ServerProcess, path: str = "test.ipynb") -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        session = server.call("POST", "api/sessions", {
            "path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}})
        self.session_id = session["id"]
        self.kernel_id = session["kernel"]["id"]
        self.client_session = uuid.uuid4().hex
        self.ws = self.loop.run_until_complete(self._connect())

    async def _connect(self) -> Any:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = (f"ws://127.0.0.1:{self.server.port}{self.server.base_url}api/kernels/"
               f"{self.kernel_id}"
               f"/channels?session_id={self.client_session}")
        request = HTTPRequest(url, headers={"Authorization": f"token {self.server.token}"},
                              connect_timeout=60, request_timeout=CELL_TIMEOUT)
        return await websocket_connect(request, max_message_size=256 * 1024 * 1024)

    def execute(self, code: str, timeout: float = CELL_TIMEOUT) -> Result:
        return self.loop.run_until_complete(self._execute(code, timeout))

    def run(self, code: str, timeout: float = CELL_TIMEOUT) -> Result:
        """Execute and require success."""
        return self.execute(code, timeout).check(code)

    async def _execute(self, code: str, timeout: float) -> Result:
        msg_id = uuid.uuid4().hex
        await self.ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": self.client_session,
                       "msg_type": "execute_request", "version": "5.3",
                       "date": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())},
            "parent_header": {}, "metadata": {}, "buffers": [], "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        result = Result()
        idle = replied = False
        deadline = time.monotonic() + timeout
        while not (idle and replied):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"cell did not finish in {timeout:g} s: {code!r} "
                                   f"(so far: {result})")
            raw = await asyncio.wait_for(self.ws.read_message(), left)
            if raw is None:
                raise ConnectionError("kernel websocket closed")
            if isinstance(raw, bytes):  # a message with binary buffers (widgets)
                continue
            msg = json.loads(raw)
            if (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            kind, content = msg.get("msg_type"), msg.get("content") or {}
            if msg.get("channel") == "shell" and kind == "execute_reply":
                replied = True
                result.status = content.get("status", "")
            elif kind == "stream":
                if content.get("name") == "stderr":
                    result.stderr += content.get("text", "")
                else:
                    result.stdout += content.get("text", "")
            elif kind == "execute_result":
                result.results.append(content.get("data") or {})
            elif kind == "display_data":
                result.displays.append(content.get("data") or {})
            elif kind == "error":
                result.error = content
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
        return result

    def close(self) -> None:
        try:
            self.ws.close()
            self.server.call("DELETE", f"api/sessions/{self.session_id}")
        except Exception:
            pass
        self.loop.close()


@pytest.fixture
def kernel(server: ServerProcess) -> Iterator[KernelWS]:
    k = KernelWS(server)
    yield k
    k.close()


TRAIN = """
import numpy as np, keras
keras.utils.set_random_seed(0)
X = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
y = (X[:, 0] + X[:, 1] > 0).astype("int32")
model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(X, y, epochs=2, batch_size=32, verbose=0)
"""


def test_magics_in_a_kernel_started_by_the_server(server: ServerProcess, kernel: KernelWS) -> None:
    kernel.run("%load_ext tfaas_jupyter")
    where = kernel.run("%tfaas server").stdout
    assert where.strip() == f"{server.url} (runtime file)", where

    # Discovery failure is not our case; errors are one line, no traceback.
    err = kernel.execute("%tfaas predict nosuch [1, 2]")
    assert err.status == "error" and err.error is None
    assert "UsageError: tfaas predict:" in err.stderr and "Traceback" not in err.stderr
    assert "nosuch" in err.stderr

    kernel.run(TRAIN)
    up = kernel.run("%tfaas upload model --name demo --labels neg,pos").stdout
    assert "uploaded demo version 1" in up and "labels neg, pos" in up, up

    kernel.run("pred = %tfaas predict demo X[:5]\n"
               "np.testing.assert_allclose(pred.to_numpy(), model(X[:5]).numpy(), "
               "rtol=1e-4, atol=1e-5)\n"
               "assert list(pred.columns) == ['neg', 'pos'], pred.columns")
    # A DataFrame, a dict and a list; the cell form with the original's JSON.
    kernel.run("import pandas as pd\n"
               "df = pd.DataFrame(X[:3], columns=list('abcd'), index=[7, 8, 9])\n"
               "p1 = %tfaas predict demo df\n"
               "p2 = %tfaas predict demo df.to_numpy()\n"
               "p3 = %tfaas predict demo [list(map(float, X[0]))]\n"
               "p4 = %tfaas predict demo dict(zip('abcd', map(float, X[0])))\n"
               "assert list(p1.index) == [7, 8, 9] and list(p2.index) == [0, 1, 2]\n"
               "np.testing.assert_allclose(p1.to_numpy(), p2.to_numpy(), rtol=1e-6)\n"
               "np.testing.assert_allclose(p4.to_numpy(), p3.to_numpy(), rtol=1e-6)\n"
               "np.testing.assert_allclose(p3.to_numpy()[0], p2.to_numpy()[0], rtol=1e-5)")
    cell = kernel.run('%%tfaas predict demo\n{"keys": ["a", "b", "c", "d"], '
                      '"values": [[0, 0, 0, 0], [1, 1, 1, 1]]}')
    assert "neg" in cell.text and "pos" in cell.text
    kernel.run("_want = model(np.array([[0] * 4, [1] * 4], 'float32')).numpy()\n"
               "np.testing.assert_allclose(_.to_numpy(), _want, rtol=1e-4, atol=1e-5)")

    models = kernel.run("%tfaas models")
    assert "demo" in models.text and "savedmodel" in models.text
    status = kernel.run("%tfaas status").stdout
    assert "worker: running" in status and "demo:" in status, status

    # The browser, driven in the kernel.
    kernel.run(
        "b = %tfaas browser\n"
        "b.select('demo')\n"
        "b.values_text.value = '0.1, 0.2, 0.3, 0.4'\n"
        "b.predict_button.click()\n"
        "assert b.last_error is None, b.last_error\n"
        "np.testing.assert_allclose(b.predictions, "
        "model(np.array([[0.1, 0.2, 0.3, 0.4]], 'float32')).numpy()[0], rtol=1e-4, atol=1e-5)\n"
        "import re\n"
        "assert re.findall('<tr data-label=\"([^\"]*)\"', b.result_html.value) == "
        "['neg', 'pos']\n"
        "assert f'{b.client.url}json' in b.copy_curl()\n"
        "b.close()")
    shown = kernel.run("%tfaas browser")
    assert any("application/vnd.jupyter.widget-view+json" in r for r in shown.results)

    # The curl line works from a shell, with the token in $JUPYTER_TOKEN.
    line = kernel.run("%tfaas curl demo").stdout.strip()
    assert line.startswith("curl ") and "$JUPYTER_TOKEN" in line and server.token not in line
    assert f"{server.url}tfaas/json" in line
    proc = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "JUPYTER_TOKEN": server.token})
    assert proc.returncode == 0, proc.stderr
    zeros = kernel.run("import json; print(json.dumps(model(np.zeros((1, 4), 'float32'))"
                       ".numpy()[0].tolist()))").stdout
    np.testing.assert_allclose(json.loads(proc.stdout), json.loads(zeros), rtol=1e-4,
                               atol=1e-5)
    # --show-token: the token goes to a 0600 file the printed line reads, not into the
    # cell's output; the line works as printed, in a shell without the token.
    shown = kernel.run("%tfaas curl demo --show-token").stdout
    assert server.token not in shown
    words = shlex.split(shown.strip().splitlines()[-1])
    header_file = Path(words[words.index("-H") + 1].removeprefix("@"))
    assert header_file.parent == server.home / ".tfaas" / "headers", shown
    assert header_file.stat().st_mode & 0o777 == 0o600
    assert header_file.read_text() == f"Authorization: token {server.token}\n"
    environ = {k: v for k, v in os.environ.items() if "TOKEN" not in k}
    proc = subprocess.run(["bash", "-c", shown.strip().splitlines()[-1]], capture_output=True,
                          text=True, timeout=120, env=environ)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(json.loads(proc.stdout), json.loads(zeros), rtol=1e-4,
                               atol=1e-5)

    deleted = kernel.run("%tfaas delete demo").stdout
    assert "deleted demo" in deleted
    assert server.call("GET", "tfaas/models") == []
    err = kernel.execute("%tfaas delete demo")
    assert "UsageError: tfaas delete:" in err.stderr and "Traceback" not in err.stderr


def test_nbclient_kernel_with_connect(server: ServerProcess, tmp_path: Path) -> None:
    """A kernel the server did not start (nbclient's) uses ``%tfaas connect``."""
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "%load_ext tfaas_jupyter",
        f"%tfaas connect http://127.0.0.1:{server.port}{BASE_URL}lab --token {server.token}",
        TRAIN,
        "%tfaas upload model --name nbdemo",
        "pred = %tfaas predict nbdemo X[:4]\n"
        "np.testing.assert_allclose(pred.to_numpy(), model(X[:4]).numpy(), rtol=1e-4, "
        "atol=1e-5)\n"
        "assert list(pred.columns) == ['output_0', 'output_1']",
        "%tfaas delete nbdemo",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=int(CELL_TIMEOUT), kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert f"{server.url}tfaas/ (connect; " in out, out
    assert server.call("GET", "tfaas/models") == []
