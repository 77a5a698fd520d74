"""A real JupyterHub (DummyAuthenticator, SimpleLocalProcessSpawner, configurable-http-
proxy from the npm registry) with two users, each with a single-user server running the
extension: tokens through the hub's proxy, %tfaas in a kernel with nothing configured,
%tfaas curl and the page with the hub's public URL, and the side panel under /user/alice/lab.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from helpers import ROOT, seed_upload_body
from servers import free_port, wait_until_ready
from test_lab import CHROMIUM, jlpm, open_panel, predict_in_panel, seed_reference

from tfaas_jupyter.client.discovery import ServerInfo
from tfaas_jupyter.client.magics import curl_command
from tfaas_jupyter.hub import public_server_url

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("jupyterhub")

HUB_NODE = ROOT / "tests" / "hub"
PASSWORD = "tfaas-test-password"
pytestmark = pytest.mark.timeout(900)


# -- the public URL, without a hub --------------------------------------------------


def test_public_server_url_from_the_hub_environment() -> None:
    assert public_server_url({}) is None
    assert public_server_url({"JUPYTERHUB_PUBLIC_URL": ""}) is None
    env = {"JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/user/alice/",
           "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"}
    assert public_server_url(env) == "https://hub.example.org/user/alice/"
    # only the host: the user's prefix is added
    env["JUPYTERHUB_PUBLIC_URL"] = "https://hub.example.org"
    assert public_server_url(env) == "https://hub.example.org/user/alice/"
    env["JUPYTERHUB_PUBLIC_URL"] = "https://hub.example.org/user/alice/named"
    assert public_server_url(env) == "https://hub.example.org/user/alice/named/"


def test_curl_line_uses_the_public_url_unless_connected_by_hand(monkeypatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_URL", "https://hub.example.org/user/alice/")
    model = {"inputs": [{"name": "x", "dtype": "float32", "shape": [None, 2]}]}
    found = ServerInfo("http://127.0.0.1:41234/user/alice/", "t", "runtime file")
    line = curl_command(found, "m", model)
    assert line.endswith(" https://hub.example.org/user/alice/tfaas/json"), line
    assert '"Authorization: token $JUPYTERHUB_API_TOKEN"' in line
    by_hand = ServerInfo("http://other:8888/", "t", "connect")
    line = curl_command(by_hand, "m", model)
    assert line.endswith(" http://other:8888/tfaas/json") and "$JUPYTER_TOKEN" in line
    monkeypatch.delenv("JUPYTERHUB_PUBLIC_URL")
    assert curl_command(found, "m", model).endswith(" http://127.0.0.1:41234/user/alice/tfaas/json")


# -- a real hub ---------------------------------------------------------------------


@dataclass
class Hub:
    url: str  # the proxy's public URL, ending with /
    admin_token: str
    root: Path
    log_path: Path

    def request(self, method: str, path: str, *, token: str | None = None,
                body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 120) -> tuple[int, bytes, Any]:
        req = urllib.request.Request(self.url + path.lstrip("/"), data=body, method=method)
        if token:
            req.add_header("Authorization", f"token {token}")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=timeout) as resp:
                return resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers

    def api(self, method: str, path: str, doc: Any = None) -> Any:
        body = None if doc is None else json.dumps(doc).encode()
        code, raw, _ = self.request(method, "hub/api/" + path, token=self.admin_token, body=body)
        assert code < 400, (method, path, code, raw, self.log())
        return json.loads(raw) if raw.strip() else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def start_server(self, user: str, timeout: float = 240) -> None:
        self.api("POST", f"users/{user}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = (self.api("GET", f"users/{user}").get("servers") or {}).get("")
            if server and server.get("ready"):
                return
            time.sleep(1)
        raise AssertionError(f"{user}'s server did not start:\n{self.log()}")

    def user_token(self, user: str) -> str:
        return self.api("POST", f"users/{user}/tokens", {"note": "tfaas test"})["token"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def proxy_command() -> str:
    """configurable-http-proxy from the npm registry, into tests/hub/node_modules."""
    binary = HUB_NODE / "node_modules" / ".bin" / "configurable-http-proxy"
    if not binary.exists():
        subprocess.run([jlpm(), "install", "--immutable"], cwd=HUB_NODE, check=True,
                       capture_output=True, timeout=600,
                       env={**os.environ, "YARN_ENABLE_PROGRESS_BARS": "false"})
    assert binary.exists()
    return str(binary)


@contextmanager
def jupyterhub(root: Path) -> Iterator[Hub]:
    root.mkdir(parents=True, exist_ok=True)
    port, hub_port, api_port = free_port(), free_port(), free_port()
    admin_token = secrets.token_hex(16)
    public = f"http://127.0.0.1:{port}/"
    bindir = Path(sys.executable).parent
    config = {
        "JupyterHub": {
            "ip": "127.0.0.1", "port": port, "hub_ip": "127.0.0.1", "hub_port": hub_port,
            "public_url": public,
            "authenticator_class": "dummy", "spawner_class": "simple",
            "db_url": f"sqlite:///{root / 'hub.sqlite'}",
            "cookie_secret_file": str(root / "cookie_secret"),
            "services": [{"name": "tfaas-test", "api_token": admin_token}],
            "load_roles": [{"name": "tfaas-test-admin", "services": ["tfaas-test"],
                            "scopes": ["admin:users", "admin:servers", "tokens",
                                       "access:servers"]}],
        },
        "ConfigurableHTTPProxy": {
            "api_url": f"http://127.0.0.1:{api_port}", "command": [proxy_command()],
            "pid_file": str(root / "proxy.pid"),
        },
        "DummyAuthenticator": {"password": PASSWORD},
        "Authenticator": {"allowed_users": ["alice", "bob"]},
        "Spawner": {
            "cmd": [str(bindir / "jupyterhub-singleuser")],
            "args": ["--allow-root"] if os.geteuid() == 0 else [],
            "default_url": "/lab", "start_timeout": 240, "http_timeout": 240,
            "environment": {"TF_CPP_MIN_LOG_LEVEL": "2"},
        },
        "SimpleLocalProcessSpawner": {"home_dir_template": str(root / "home" / "{username}")},
    }
    (root / "jupyterhub_config.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTERHUB_", "JPY_", "TFAAS_")) and k != "JUPYTER_TOKEN"}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    log_path = root / "hub.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(root / "jupyterhub_config.json")],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        hub = Hub(public, admin_token, root, log_path)
        try:
            wait_until_ready(proc, lambda: hub.request("GET", "hub/api/", timeout=5)[0] == 200,
                             what="jupyterhub", log=hub.log, timeout=180, interval=0.5)
            yield hub
        finally:
            # the hub stops the single-user servers and the proxy it started
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            _kill_process_group_leftovers(proc.pid)


def hub_login(page: Any, hub: Hub, user: str) -> None:
    """Log ``user`` in through the hub's login form, as a person does."""
    page.goto(hub.url + "hub/login", timeout=120_000)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()


def _kill_process_group_leftovers(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def run_in_kernel(hub: Hub, user: str, token: str, code: str,
                        timeout: float = 240) -> str:
    """Start a kernel in ``user``'s server through the hub's proxy, run ``code`` over the
    kernel's websocket and answer its output (streams, results, errors) as text."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    code_, raw, _ = hub.request("POST", f"user/{user}/api/kernels", token=token,
                                body=b'{"name": "python3"}',
                                headers={"Content-Type": "application/json"})
    assert code_ == 201, (code_, raw)
    kid = json.loads(raw)["id"]
    ws_url = hub.url.replace("http://", "ws://") + f"user/{user}/api/kernels/{kid}/channels"
    conn = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}))
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": user,
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    out: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            raw_msg = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
            assert raw_msg is not None, "the kernel's websocket closed"
            msg = json.loads(raw_msg)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                out.append("ERROR " + content["ename"] + ": " + content["evalue"])
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out)
        raise AssertionError(f"the kernel did not finish: {''.join(out)}")
    finally:
        conn.close()
        hub.request("DELETE", f"user/{user}/api/kernels/{kid}", token=token)


def test_a_real_jupyterhub(tmp_path: Path, seed_dir: Path) -> None:
    with jupyterhub(tmp_path / "hub") as hub:
        hub.start_server("alice")
        alice, bob = hub.user_token("alice"), hub.user_token("bob")
        tfaas = "user/alice/tfaas/"

        # from outside, through the hub's proxy, with alice's hub API token
        body, ctype = seed_upload_body(seed_dir)
        code, raw, _ = hub.request("POST", tfaas + "upload", token=alice, body=body,
                                   headers={"Content-Type": ctype}, timeout=300)
        assert code == 200, (raw, hub.log())
        talk = json.loads((seed_dir / "input.json").read_text())["values"]
        row = [round(v * 0.9 - 0.02, 6) for v in talk]
        curl = subprocess.run(
            ["curl", "-sS", "-f", "-H", f"Authorization: token {alice}",
             hub.url + tfaas + "models"], capture_output=True, text=True, timeout=60)
        assert curl.returncode == 0, curl.stderr
        assert [m["name"] for m in json.loads(curl.stdout)] == ["vk"]
        curl = subprocess.run(
            ["curl", "-sS", "-f", "-H", f"Authorization: token {alice}", "-X", "POST",
             "-d", json.dumps({"model": "vk", "values": row}), hub.url + tfaas + "json"],
            capture_output=True, text=True, timeout=120)
        assert curl.returncode == 0, curl.stderr
        assert json.loads(curl.stdout) == pytest.approx([seed_reference(row)], rel=1e-5)

        # bob's token does not open alice's server; no token neither
        for token in (bob, None):
            code, raw, headers = hub.request("GET", tfaas + "models", token=token)
            assert code in (302, 403), (code, raw)
            assert b'"vk"' not in raw
            code, raw, _ = hub.request("POST", tfaas + "json", token=token,
                                       body=json.dumps({"model": "vk", "values": row}).encode())
            assert code in (302, 403), (code, raw)

        # the page at tfaas/ shows the hub's public URL
        code, raw, _ = hub.request("GET", tfaas, token=alice)
        assert code == 200 and f"{hub.url}{tfaas}json".encode() in raw, raw[:2000]

        # %tfaas in a kernel of alice's server: nothing configured
        code = (
            "%load_ext tfaas_jupyter\n"
            f"outputs = %tfaas predict vk {json.dumps([row])}\n"
            "print(float(outputs.iloc[0, 0]))\n"
            "%tfaas curl vk\n"
        )
        text = asyncio.run(run_in_kernel(hub, "alice", alice, code))
        assert "ERROR" not in text, text
        lines = text.strip().splitlines()
        assert float(lines[0]) == pytest.approx(seed_reference(row), rel=1e-5), text
        curl_line = next(ln for ln in lines if ln.startswith("curl "))
        assert curl_line.endswith(f" {hub.url}{tfaas}json"), curl_line
        assert "$JUPYTERHUB_API_TOKEN" in curl_line
        # the line works from outside as printed, with a hub API token
        run = subprocess.run(["bash", "-c", curl_line], capture_output=True, text=True,
                             env={**os.environ, "JUPYTERHUB_API_TOKEN": alice}, timeout=120)
        outputs = json.loads(run.stdout)
        assert isinstance(outputs, list) and len(outputs) == 1, run

        # the side panel under /user/alice/lab, logged in through the hub's login form
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu",
                                               "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            hub_login(page, hub, "alice")
            open_panel(page, hub.url + "user/alice/lab")
            assert "/user/alice/lab" in page.url
            panel = page.locator("#tfaas-sidebar")
            panel.locator('[data-model="vk"]').wait_for(timeout=60_000)
            ((label, value, _),) = predict_in_panel(page, "vk", row)
            assert label == "signal"
            assert value == pytest.approx(seed_reference(row), rel=1e-5)
            panel.locator('[data-tfaas="curl"]').click()
            shown = panel.locator('[data-tfaas="curl-text"]')
            shown.wait_for()
            line = shown.inner_text()
            assert line.endswith(f" {hub.url}{tfaas}json") and "$JUPYTERHUB_API_TOKEN" in line
            run = subprocess.run(["bash", "-c", line], capture_output=True, text=True,
                                 env={**os.environ, "JUPYTERHUB_API_TOKEN": alice}, timeout=120)
            assert json.loads(run.stdout) == pytest.approx([seed_reference(row)], rel=1e-5), run
            browser.close()
