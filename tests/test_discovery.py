"""Discovery of the kernel's Jupyter server, with fake runtime dirs and environments.

The end-to-end case (a kernel really started by a server) is in test_notebook.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from tfaas_jupyter.client import discovery
from tfaas_jupyter.client.discovery import DiscoveryError, find_server, parse_server_url

KID = "0b7a4f8e-1111-2222-3333-444455556666"


@pytest.fixture(autouse=True)
def _no_explicit() -> Iterator[None]:
    discovery.disconnect()
    yield
    discovery.disconnect()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_runtime(d: Path, pid: int, **info: Any) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    doc = {"url": f"http://localhost:{info.get('port', 8888)}/", "hostname": "localhost",
           "port": 8888, "base_url": "/", "token": "tok", "pid": pid, "secure": False,
           "sock": "", "password": False}
    doc.update(info)
    path = d / f"jpserver-{pid}.json"
    path.write_text(json.dumps(doc))
    path.chmod(0o600)  # as Jupyter writes it; discovery trusts no other
    return path


def connection_file(d: Path) -> str:
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"kernel-{KID}.json"
    path.write_text("{}")
    return str(path)


def test_parent_pid_runtime_file_next_to_connection_file(tmp_path: Path) -> None:
    """SWAN: the server's runtime dir is where the connection file is, not the kernel's
    own jupyter_runtime_dir()."""
    server_rt, kernel_rt = tmp_path / "server-rt", tmp_path / "kernel-rt"
    write_runtime(server_rt, 4242, port=9999, base_url="/user/alice/", hostname="0.0.0.0",
                  token="secret")
    kernel_rt.mkdir()
    cf = connection_file(server_rt)
    env = {"JPY_PARENT_PID": "4242", "JUPYTER_RUNTIME_DIR": str(kernel_rt)}
    dirs = discovery.runtime_dirs(cf, env)
    assert dirs[0] == server_rt.resolve()
    info = find_server(env=env, connection_file=cf, dirs=dirs)
    assert info.url == "http://127.0.0.1:9999/user/alice/"
    assert info.tfaas_url == "http://127.0.0.1:9999/user/alice/tfaas/"
    assert info.base_url == "/user/alice/"
    assert info.token == "secret"
    assert info.source == "runtime file"


def test_parent_pid_runtime_file_in_second_dir(tmp_path: Path) -> None:
    write_runtime(tmp_path / "rt", 4243, port=8123)
    info = find_server(env={"JPY_PARENT_PID": "4243"}, connection_file="",
                       dirs=[tmp_path / "empty", tmp_path / "rt"])
    assert info.url == "http://127.0.0.1:8123/"


def test_runtime_dirs_uses_jupyter_runtime_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "rt"))
    dirs = discovery.runtime_dirs(str(tmp_path / "conn" / f"kernel-{KID}.json"))
    assert dirs == [(tmp_path / "conn").resolve(), (tmp_path / "rt").resolve()]


def test_explicit_connect_wins(tmp_path: Path) -> None:
    write_runtime(tmp_path, 4244)
    discovery.connect("http://example.org:8000/user/bob/lab?token=abc")
    info = find_server(env={"JPY_PARENT_PID": "4244"}, connection_file="", dirs=[tmp_path])
    assert (info.url, info.token, info.source) == ("http://example.org:8000/user/bob/", "abc",
                                                   "connect")
    discovery.disconnect()
    assert find_server(env={"JPY_PARENT_PID": "4244"}, connection_file="",
                       dirs=[tmp_path]).source == "runtime file"


def test_env_override(tmp_path: Path) -> None:
    env = {"TFAAS_URL": "http://127.0.0.1:7000/base/tfaas/", "TFAAS_TOKEN": "t",
           "JPY_PARENT_PID": "1"}
    info = find_server(env=env, connection_file="", dirs=[tmp_path])
    assert (info.url, info.token, info.source) == ("http://127.0.0.1:7000/base/", "t",
                                                   "TFAAS_URL")


@pytest.mark.parametrize(
    ("given", "url", "token"),
    [
        ("127.0.0.1:8888", "http://127.0.0.1:8888/", None),
        ("http://h:1/user/x", "http://h:1/user/x/", None),
        ("http://h:1/user/x/tfaas/models", "http://h:1/user/x/", None),
        ("https://h/user/x/tree?token=zz", "https://h/user/x/", "zz"),
    ],
)
def test_parse_server_url(given: str, url: str, token: str | None) -> None:
    info = parse_server_url(given, env={})
    assert (info.url, info.token) == (url, token)


def test_jupyterhub_env(tmp_path: Path) -> None:
    env = {"JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/carol/",
           "JUPYTERHUB_SERVICE_PREFIX": "/user/carol/", "JUPYTERHUB_API_TOKEN": "hubtok"}
    info = find_server(env=env, connection_file="", dirs=[tmp_path])
    assert (info.url, info.token, info.source) == ("http://127.0.0.1:8888/user/carol/",
                                                   "hubtok", "JupyterHub")
    # A bind URL without a path gets the prefix.
    env["JUPYTERHUB_SERVICE_URL"] = "http://*:8890"
    assert find_server(env=env, connection_file="", dirs=[tmp_path]).url == \
        "http://127.0.0.1:8890/user/carol/"


def test_runtime_file_without_token_uses_hub_token(tmp_path: Path) -> None:
    write_runtime(tmp_path, 4245, token="", base_url="/user/dan/")
    env = {"JPY_PARENT_PID": "4245", "JUPYTERHUB_API_TOKEN": "hubtok"}
    info = find_server(env=env, connection_file="", dirs=[tmp_path])
    assert info.token == "hubtok" and info.url.endswith("/user/dan/")


def test_every_source_follows_the_one_token_order(tmp_path: Path) -> None:
    """The runtime file's token is the explicit one; then the URL's ?token=; then the
    environment in TOKEN_ENV_VARS order (the same as the client and the CLI)."""
    write_runtime(tmp_path, 4246, token="file-token")
    env = {"JPY_PARENT_PID": "4246", "TFAAS_TOKEN": "tf", "JUPYTERHUB_API_TOKEN": "hub"}
    assert find_server(env=env, connection_file="", dirs=[tmp_path]).token == "file-token"

    hub = {"JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:8888/user/erin/",
           "JPY_API_TOKEN": "jpy", "JUPYTERHUB_API_TOKEN": "hub"}
    assert find_server(env=hub, connection_file="", dirs=[tmp_path]).token == "jpy"
    assert find_server(env={**hub, "JUPYTER_TOKEN": "jt"}, connection_file="",
                       dirs=[tmp_path]).token == "jt"

    copied = {"TFAAS_URL": "https://h/hub/user/erin/lab/tree/x.ipynb?token=url",
              "TFAAS_TOKEN": "tf"}
    info = find_server(env=copied, connection_file="", dirs=[tmp_path])
    assert (info.url, info.token, info.source) == ("https://h/user/erin/", "url", "TFAAS_URL")
    copied["TFAAS_URL"] = "https://h/user/erin/doc/tree/x.ipynb"
    assert find_server(env=copied, connection_file="", dirs=[tmp_path]).token == "tf"


def test_use_server_puts_a_choice_back(tmp_path: Path) -> None:
    assert discovery.explicit_server() is None
    first = discovery.connect("http://127.0.0.1:1/user/a/lab", "t1")
    assert discovery.explicit_server() is first
    discovery.connect("http://127.0.0.1:2/")
    discovery.use_server(first)
    assert find_server(env={}, connection_file="", dirs=[tmp_path]) is first
    discovery.use_server(None)
    assert discovery.explicit_server() is None


class _Sessions(BaseHTTPRequestHandler):
    kernel = KID
    token = "good"

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"token {self.token}":
            self.send_response(403)
            self.end_headers()
            return
        if self.path.endswith("/api/sessions"):
            body = json.dumps([{"id": "s", "kernel": {"id": self.kernel}}]).encode()
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sessions_server() -> Iterator[int]:
    httpd = HTTPServer(("127.0.0.1", 0), _Sessions)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_sessions_match_among_running_servers(tmp_path: Path, sessions_server: int) -> None:
    """No JPY_PARENT_PID (or a stale one): find the live server that runs our kernel."""
    import os

    rt = tmp_path / "rt"
    # A dead server's file is skipped; a live server with the wrong token is not ours.
    write_runtime(rt, dead_pid(), port=1)
    other = write_runtime(rt, os.getppid(), port=sessions_server, token="wrong")
    assert len(discovery.running_servers([rt])) == 1
    cf = connection_file(tmp_path / "conn")
    with pytest.raises(DiscoveryError) as err:
        find_server(env={}, connection_file=cf, dirs=[rt])
    assert "%tfaas connect" in str(err.value)
    other.unlink()
    write_runtime(rt, os.getpid(), port=sessions_server, base_url="/b/", token="good")
    info = find_server(env={"JPY_PARENT_PID": "999999999"}, connection_file=cf, dirs=[rt])
    assert info.url == f"http://127.0.0.1:{sessions_server}/b/"
    assert info.source == "sessions"


def test_failure_says_how_to_connect(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError) as err:
        find_server(env={}, connection_file="", dirs=[tmp_path])
    message = str(err.value)
    assert "%tfaas connect" in message and "TFAAS_URL" in message


def test_local_url_variants() -> None:
    assert discovery.local_url({"hostname": "localhost", "port": 1, "base_url": "x"}) == \
        "http://127.0.0.1:1/x/"
    assert discovery.local_url({"hostname": "10.0.0.5", "port": 2, "secure": True}) == \
        "https://10.0.0.5:2/"
    assert discovery.local_url({"sock": "/tmp/s.sock", "port": 0}) is None


def test_imports_without_jupyter_server_or_tensorflow() -> None:
    code = (
        "import sys\n"
        "sys.modules['jupyter_server'] = None\n"  # an import of it would fail
        "import tfaas_jupyter.client.discovery, tfaas_jupyter.client.magics\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
        "assert 'keras' not in sys.modules, 'keras imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
