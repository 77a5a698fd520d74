"""A real ``jupyter server`` subprocess with the extension, for tests that restart or
kill the server, or need a kernel started by it."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """A running server: its URLs, token and process."""

    proc: subprocess.Popen
    port: int
    token: str
    base_url: str
    home: Path
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The server's root URL, ending with the base URL's slash."""
        return f"http://127.0.0.1:{self.port}{self.base_url}"

    @property
    def tfaas(self) -> str:
        return self.url + "tfaas/"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def runtime_dir(self) -> Path:
        return self.home / "runtime"

    @property
    def runtime_file(self) -> Path:
        return self.runtime_dir / f"jpserver-{self.pid}.json"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 120,
                ) -> tuple[int, bytes]:
        """A blocking request to ``{base_url}{path}`` with the token; errors returned too."""
        req = urllib.request.Request(self.url + path.lstrip("/"), data=body, method=method)
        req.add_header("Authorization", f"token {self.token}")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, method: str, path: str, doc: Any = None) -> tuple[int, Any]:
        body = None if doc is None else json.dumps(doc).encode()
        code, raw = self.request(method, path, body, {"Content-Type": "application/json"})
        return code, json.loads(raw) if raw.strip() else None

    def call(self, method: str, path: str, doc: Any = None) -> Any:
        """A JSON call that must succeed; answers the decoded body."""
        code, answer = self.json(method, path, doc)
        if code >= 400:
            raise AssertionError(f"{method} {path}: {code} {answer}")
        return answer

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pid(self) -> int | None:
        code, status = self.json("GET", "tfaas/status")
        return (status or {}).get("worker", {}).get("pid") if code == 200 else None


def wait_until_ready(proc: subprocess.Popen, ready: Callable[[], bool], *, what: str,
                     log: Callable[[], str], timeout: float, interval: float = 0.3) -> None:
    """Poll ``ready`` (connection errors count as not yet) until it is true; a process
    that exits first, or a deadline passed, fails with ``what`` and its ``log``."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{log()}")
        try:
            if ready():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer:\n{log()}")
        time.sleep(interval)


@contextmanager
def jupyter_server(
    home: Path,
    *,
    model_dir: Path | None = None,
    base_url: str = "/",
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    ready_path: str = "tfaas/models",
    timeout: float = 120,
    python: str = sys.executable,
    with_tfaas: bool = True,
    app: str = "server",
    prefix: list[str] | None = None,
) -> Iterator[ServerProcess]:
    """Start ``python -m jupyter server`` (``app="lab"``: ``jupyter lab``) with
    tfaas_jupyter (unless ``with_tfaas`` is false); stop (or kill) it on exit.

    ``python`` is the interpreter of the server (default: the tests' own).

    The server's environment holds nothing that would point a kernel at another
    server (TFAAS_*, JUPYTERHUB_*, JPY_*, JUPYTER_TOKEN). It counts as started once it
    answers ``ready_path`` and has written its runtime file, as kernels look for it.
    ``python`` runs it (default: this interpreter), e.g. another environment's.
    ``prefix`` runs before it and must exec it (keeping its pid), e.g. ``nsenter``.
    """
    home.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    model_dir = model_dir or home / "models"
    inherited = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("TFAAS_", "JUPYTERHUB_", "JPY_")) and k != "JUPYTER_TOKEN"
    }
    full_env = {
        **inherited,
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **(env or {}),
    }
    cmd = [
        python, "-m", "jupyter", app, "--no-browser",
        "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.base_url={base_url}",
        f"--ServerApp.root_dir={home}",
        f'--ServerApp.jpserver_extensions={{"tfaas_jupyter": {with_tfaas}}}',
        f"--TFaaSApp.model_dir={model_dir}",
        *(args or []),
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = home / f"server-{port}.log"
    log = open(log_path, "wb")  # closed in the finally below
    # cwd: not the source tree, whose tfaas_jupyter/ would shadow the installed package.
    proc = subprocess.Popen([*(prefix or []), *cmd], env=full_env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=home, start_new_session=True)
    server = ServerProcess(proc, port, token, base_url, home, log_path)
    try:
        wait_until_ready(
            proc, lambda: (server.request("GET", ready_path, timeout=5)[0] == 200
                           and server.runtime_file.exists()),
            what="jupyter server", log=lambda: server.log()[-3000:], timeout=timeout)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def listed_lines(text: str, pattern: str) -> list[str]:
    """The lines of a ``jupyter server extension list`` or ``jupyter labextension list``
    output that ``pattern`` matches whole (colours removed, surrounding blanks ignored)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return [line.strip() for line in plain.splitlines() if re.fullmatch(pattern, line.strip())]
