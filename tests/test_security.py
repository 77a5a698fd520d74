"""Authentication: nothing under ``{base_url}tfaas/`` is served without a login, the
login cookie needs the XSRF token, CORS stays Jupyter's, and jupyter_server's own auth
gate (the extension template's check_auth.py) finds no undecorated handler of ours."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from http.cookies import SimpleCookie
from pathlib import Path

import numpy as np
import pytest
from helpers import TFaaSCaller, seed_predict
from tfaas_jupyter.handlers import key_url_routes, routes
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.web import RequestHandler

pytestmark = pytest.mark.timeout(600)

_SAMPLES = {"name": "vk", "version": "1", "label": "stable", "key_name": "grid-job",
            "tfaas_key": "tfk_" + "W" * 43, "region": "rows", "asset": "view.js"}
#: Routes that answer without a login: the graph viewer's own files, from the installed
#: netron package (open source, the same for everyone, like Lab's static files); the
#: viewer's page and the model file it reads need a login.
_PUBLIC = {"tfaas/graph/view.js"}
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def expand(pattern: str) -> str:
    """A concrete path for a route pattern: groups filled with sample values."""
    path = re.sub(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)", lambda m: _SAMPLES[m.group(1)], pattern)
    path = path.replace("/?", "/").replace("\\.", ".").replace("(?::|%3[Aa])", ":")
    assert not set(path) & set("()[]?*+\\$^"), f"cannot expand route {pattern!r} -> {path!r}"
    return path.lstrip("/")


def implemented_methods(handler: type) -> list[str]:
    """The HTTP methods a handler implements itself (not RequestHandler's 405 stubs)."""
    found = []
    for method in _METHODS:
        impl = getattr(handler, method.lower(), None)
        if impl is not None and impl is not getattr(RequestHandler, method.lower(), None):
            found.append(method)
    return found


def route_cases() -> list[tuple[str, str, type]]:
    cases = []
    for pattern, handler in routes() + key_url_routes():
        for method in implemented_methods(handler):
            cases.append((method, expand(pattern), handler))
    return cases


def test_route_expansion_covers_every_route() -> None:
    cases = route_cases()
    assert {path for _m, path, _h in cases} >= {
        "tfaas/", "tfaas/json", "tfaas/upload", "tfaas/delete/vk/1", "tfaas/params/vk/1",
        "tfaas/keys", "tfaas/keys/grid-job", f"tfaas/key/{_SAMPLES['tfaas_key']}/json",
    }
    assert len({pattern for pattern, _ in routes()}) == len(routes())


async def _raw(url: str, method: str, headers: dict[str, str] | None = None,
               body: bytes | None = None) -> HTTPResponse:
    if body is None and method in ("POST", "PUT", "PATCH"):
        body = b"{}"
    return await AsyncHTTPClient().fetch(
        url, method=method, headers=headers or {}, body=body, raise_error=False,
        follow_redirects=False, allow_nonstandard_methods=True, request_timeout=120,
    )


async def test_every_route_and_method_refuses_unauthenticated_clients(
    tfaas: TFaaSCaller, seed_dir: Path, jp_http_port: int, jp_base_url: str, model_dir: Path
) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    base = f"http://localhost:{jp_http_port}{jp_base_url}"
    secrets = [b"dense_1_input", b"output_node0", b"signal", str(model_dir).encode()]
    checked = 0
    for method, path, _handler in route_cases():
        for headers in ({}, {"Authorization": "token wrong"}, {"Cookie": "username-x=forged"}):
            reply = await _raw(base + path, method, headers)
            where = f"{method} /{path} {headers}"
            if method == "OPTIONS":
                # CORS preflight: Jupyter's answer, with no content and no wildcard.
                assert reply.code in (200, 204, 403, 405), (where, reply.code)
                assert reply.code >= 400 or not reply.body, where
            elif path in _PUBLIC and method in ("GET", "HEAD"):
                assert reply.code == 200, (where, reply.code)
            elif reply.code == 302:
                # the pages (tfaas/, the graph view, the API explorer) send a browser to
                # the login page
                pages = ("tfaas/", "tfaas/graph/", "tfaas/explorer/")
                assert method in ("GET", "HEAD") and path in pages, where
                assert "/login" in reply.headers["Location"], where
            else:
                assert reply.code == 403, (where, reply.code, reply.body[:300])
            assert reply.headers.get("Access-Control-Allow-Origin") is None, where
            for secret in secrets:
                assert secret not in reply.body, (where, secret, reply.body[:300])
            if method not in ("HEAD", "OPTIONS") and reply.code == 403:
                assert "error" in json.loads(reply.body) or b"403" in reply.body, where
            checked += 1
    assert checked >= 3 * len(routes())
    # Nothing was changed by the refused requests.
    assert (await tfaas.call("GET", "models/vk")).json()["versions"] == [1]


def _cookies(response: HTTPResponse) -> dict[str, str]:
    jar: dict[str, str] = {}
    for header in response.headers.get_list("Set-Cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        for key, morsel in cookie.items():
            jar[key] = morsel.value
    return jar


async def test_prediction_answers_carry_no_login_cookie(
    tfaas: TFaaSCaller, seed_dir: Path, jp_http_port: int, jp_base_url: str, jp_serverapp
) -> None:
    """Jupyter sets its login cookie on every answer to a token request that brought
    none; the prediction API answers programs and sets none, still checking the token."""
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    base = f"http://localhost:{jp_http_port}{jp_base_url}"
    auth = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    row = [0.01 * i for i in range(42)]

    def login_cookies(response: HTTPResponse) -> list[str]:
        return [k for k in _cookies(response) if k.startswith("username-")]

    for path, body in (
        ("tfaas/json", {"model": "vk", "values": row}),
        ("tfaas/v2/models/vk/infer",
         {"inputs": [{"name": "dense_1_input", "shape": [1, 42], "datatype": "FP32",
                      "data": row}]}),
        ("tfaas/v1/models/vk:predict", {"instances": [row]}),
    ):
        reply = await _raw(base + path, "POST", auth, json.dumps(body).encode())
        assert reply.code == 200, (path, reply.body[:300])
        assert login_cookies(reply) == [], path
        refused = await _raw(base + path, "POST", {"Authorization": "token wrong"},
                             json.dumps(body).encode())
        assert refused.code == 403, path
    answer = json.loads((await _raw(base + "tfaas/json", "POST", auth,
                                    json.dumps({"model": "vk", "values": row}).encode())).body)
    np.testing.assert_allclose(answer, seed_predict(row), rtol=1e-5)
    # Jupyter's own API and the other tfaas routes keep Jupyter's behaviour.
    assert login_cookies(await _raw(base + "api/status", "GET", auth))
    assert login_cookies(await _raw(base + "tfaas/models", "GET", auth))


async def test_cookie_login_needs_the_xsrf_token(
    tfaas: TFaaSCaller, seed_dir: Path, jp_http_port: int, jp_base_url: str, jp_serverapp
) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    base = f"http://localhost:{jp_http_port}{jp_base_url}"
    token = jp_serverapp.identity_provider.token
    # The login page hands out the _xsrf cookie; a token request the login cookie.
    jar = _cookies(await _raw(base + "login", "GET"))
    assert "_xsrf" in jar, "the login page should set the _xsrf cookie"
    login = await _raw(base + "tfaas/models", "GET", {"Authorization": f"token {token}"})
    assert login.code == 200
    jar.update(_cookies(login))
    login_cookies = [k for k in jar if k.startswith("username-")]
    assert login_cookies, jar
    cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    body = (seed_dir / "input.json").read_bytes()

    # the cookie alone lets a browser read...
    reply = await _raw(base + "tfaas/models", "GET", {"Cookie": cookie})
    assert reply.code == 200 and b"vk" in reply.body
    # ...but not post: a cross-site form could do that
    reply = await _raw(base + "tfaas/json", "POST", {"Cookie": cookie}, body)
    assert reply.code == 403, reply.body
    assert b"signal" not in reply.body and b"[" not in reply.body.split(b'"error"')[0]
    reply = await _raw(base + "tfaas/json", "POST",
                       {"Cookie": cookie, "X-XSRFToken": "not-the-token"}, body)
    assert reply.code == 403
    reply = await _raw(base + "tfaas/delete/vk", "DELETE", {"Cookie": cookie})
    assert reply.code == 403
    # with the _xsrf cookie echoed in the header it works
    reply = await _raw(base + "tfaas/json", "POST",
                       {"Cookie": cookie, "X-XSRFToken": jar["_xsrf"]}, body)
    assert reply.code == 200, reply.body
    np.testing.assert_allclose(json.loads(reply.body), seed_predict(json.loads(body)["values"]),
                               rtol=1e-5)
    assert (await tfaas.call("GET", "models/vk")).code == 200


async def test_cors_stays_jupyters(
    tfaas: TFaaSCaller, seed_dir: Path, jp_http_port: int, jp_base_url: str, jp_serverapp
) -> None:
    """Our endpoints answer a foreign Origin exactly as Jupyter's own API does.

    (Jupyter lets token-authenticated requests cross origins by echoing the Origin;
    we add nothing, in particular never ``Access-Control-Allow-Origin: *``.)
    """
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    root = f"http://localhost:{jp_http_port}{jp_base_url}"
    token = jp_serverapp.identity_provider.token
    body = (seed_dir / "input.json").read_bytes()
    cors = ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
            "Access-Control-Allow-Methods", "Access-Control-Allow-Headers")
    for headers in ({"Origin": "http://evil.example", "Authorization": f"token {token}"},
                    {"Origin": "http://evil.example"}):
        for method in ("GET", "OPTIONS", "POST"):
            jupyter = await _raw(root + "api/status", method, headers)
            want = {h: jupyter.headers.get(h) for h in cors}
            for path in ("models", "status", "json", "metrics", "openapi.json"):
                reply = await _raw(root + "tfaas/" + path, method, headers,
                                   body if method == "POST" else None)
                got = {h: reply.headers.get(h) for h in cors}
                where = (method, path, headers.keys())
                assert got["Access-Control-Allow-Origin"] != "*", where
                if reply.code not in (404, 405) and jupyter.code != 405:
                    assert got == want, (where, got, want)
                if "Authorization" not in headers:
                    assert got["Access-Control-Allow-Origin"] is None, where


_AUTH_GATE = textwrap.dedent(
    """
    import sys, warnings
    from jupyter_server.serverapp import ServerApp
    from jupyter_server.utils import JupyterServerAuthWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app = ServerApp(
            allow_unauthenticated_access=False,
            jpserver_extensions={"tfaas_jupyter": True},
            reraise_server_extension_failures=True,
        )
        app.initialize(argv=["--TFaaSApp.model_dir=" + sys.argv[1],
                             "--TFaaSApp.start_worker=False"],
                       find_extensions=False, new_httpserver=False)
    loaded = "tfaas_jupyter" in app.extension_manager.extensions
    print("LOADED" if loaded else "NOT LOADED")
    for w in caught:
        if issubclass(w.category, JupyterServerAuthWarning):
            print("AUTHWARNING", str(w.message).replace("\\n", " | "))
    """
)


def test_jupyter_auth_gate_finds_no_unauthenticated_handler(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_NO_CONFIG": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", _AUTH_GATE, str(tmp_path / "models")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED" in result.stdout.splitlines(), result.stdout + result.stderr[-3000:]
    handler_names = {h.__name__ for _p, h in routes()} | {"tfaas"}
    ours = [
        line for line in result.stdout.splitlines()
        if line.startswith("AUTHWARNING") and any(n in line for n in handler_names)
    ]
    assert ours == [], ours


# -- the repository distrusts its folder; the worker gets no credentials ---------------


def _plant_graph(folder: Path, seed_dir: Path, params: dict | None = None) -> None:
    folder.mkdir(parents=True)
    for name in ("model.pb", "labels.txt"):
        (folder / name).write_bytes((seed_dir / name).read_bytes())
    doc = json.loads((seed_dir / "params.json").read_text())
    doc["name"] = folder.parent.name
    (folder / "params.json").write_text(json.dumps({**doc, **(params or {})}))


def test_staging_and_trash_symlinks_are_never_followed(tmp_path: Path) -> None:
    from tfaas_jupyter.server.repository import Repository

    victim, victim2 = tmp_path / "victim", tmp_path / "victim2"
    for folder in (victim, victim2):
        (folder / "precious").mkdir(parents=True)
        (folder / "precious" / "data.txt").write_text("keep me")
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    (model_dir / ".staging").symlink_to(victim)
    (model_dir / ".trash").symlink_to(victim2)
    repo = Repository(model_dir)
    for folder in (victim, victim2):
        assert (folder / "precious" / "data.txt").read_text() == "keep me"
    staging = repo.new_staging_dir()
    assert staging.parent == model_dir / ".staging"
    assert not (model_dir / ".staging").is_symlink() and not list(victim.glob("*-*"))
    assert not os.path.lexists(model_dir / ".trash")  # opening removed the link
    # a link planted while the server runs: a delete moves the model to a real .trash
    (model_dir / ".trash").symlink_to(victim2)
    (staging / "model.pb").write_bytes(b"graph")
    repo.commit("doomed", staging, {"format": "graphdef", "model": "model.pb"})
    assert repo.delete("doomed") == [1]
    assert not (model_dir / ".trash").is_symlink()
    assert sorted(p.name for p in victim2.iterdir()) == ["precious"]
    assert (victim2 / "precious" / "data.txt").read_text() == "keep me"


def test_recovery_removes_only_leftovers_of_dead_processes(tmp_path: Path) -> None:
    import subprocess

    from tfaas_jupyter.server.repository import Repository

    model_dir = tmp_path / "models"
    repo = Repository(model_dir)
    live = repo.new_staging_dir()  # this process's: another server sharing the folder
    (live / "part").write_text("being written")
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
    dead = model_dir / ".staging" / f"{dead_pid}-{'a' * 32}"
    dead.mkdir()
    foreign = model_dir / ".staging" / "not-ours"
    foreign.mkdir()
    Repository(model_dir)  # opening the repository recovers
    # an untagged entry in .staging is nobody's (every server tags its own): removed
    assert (live / "part").read_text() == "being written" and not foreign.exists()
    assert not dead.exists()
    assert repo.recover() == []


def test_a_folder_others_may_write_into_is_refused(tmp_path: Path) -> None:
    from tfaas_jupyter.server.repository import Repository, RepositoryRefused

    model_dir = tmp_path / "models"
    model_dir.mkdir()
    model_dir.chmod(0o777)
    with pytest.raises(RepositoryRefused, match=r"anyone may write into it \(mode 0777\)"):
        Repository(model_dir)
    with pytest.raises(RepositoryRefused, match="0777"):
        Repository(model_dir, group_shared=True)
    model_dir.chmod(0o775)
    with pytest.raises(RepositoryRefused, match=r"group_shared_model_dir.*|0775"):
        Repository(model_dir)
    assert Repository(model_dir, group_shared=True).names() == []
    model_dir.chmod(0o755)
    assert Repository(model_dir).names() == []


def test_a_group_shared_model_dir_is_served_only_when_the_admin_says_so(
    tmp_path: Path, seed_dir: Path
) -> None:
    """A server whose model_dir its group may write into serves no model and logs why
    (naming the mode and the setting); with TFaaSApp.group_shared_model_dir=True it
    serves that folder."""
    from helpers import seed_upload_body
    from servers import jupyter_server

    model_dir = tmp_path / "shared"
    model_dir.mkdir()
    model_dir.chmod(0o775)
    with jupyter_server(tmp_path / "home", model_dir=model_dir,
                        ready_path="api/status") as server:
        assert server.request("GET", "tfaas/models")[0] == 404
        log = server.log()
    assert "its group may write into it (mode 0775)" in log, log[-2000:]
    assert "TFaaSApp.group_shared_model_dir=True" in log
    with jupyter_server(tmp_path / "home", model_dir=model_dir,
                        args=["--TFaaSApp.group_shared_model_dir=True"]) as server:
        body, ctype = seed_upload_body(seed_dir)
        code, answer = server.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
        assert code == 200, answer
    assert (model_dir / "vk" / "1" / "model.pb").is_file()


def test_commits_of_two_processes_are_serialised_by_the_lock_file(
    tmp_path: Path, seed_dir: Path
) -> None:
    import shutil
    import threading
    import time

    from tfaas_jupyter.server.repository import Repository

    model_dir = tmp_path / "models"
    repo = Repository(model_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(model_dir / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        staging = repo.new_staging_dir()
        for name in ("model.pb", "params.json", "labels.txt"):
            shutil.copy(seed_dir / name, staging / name)
        done: list[int] = []
        thread = threading.Thread(target=lambda: done.append(repo.commit(
            "vk", staging, {"format": "graphdef", "model": "model.pb"}).version))
        thread.start()
        time.sleep(2)
        assert done == [] and not (model_dir / "vk" / "1").exists()  # waits for the lock
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()
    thread.join(timeout=60)
    assert done == [1]


async def test_hand_planted_folders_cannot_read_files_or_break_listing(
    tfaas: TFaaSCaller, seed_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password-line-1\npassword-line-2\n")
    _plant_graph(model_dir / "traversal" / "1", seed_dir,
                 {"labels": "../../../secret.txt"})
    _plant_graph(model_dir / "absolute" / "1", seed_dir, {"labels": str(secret)})
    _plant_graph(model_dir / "linked" / "1", seed_dir)
    (model_dir / "linked" / "1" / "labels.txt").unlink()
    (model_dir / "linked" / "1" / "labels.txt").symlink_to(secret)
    _plant_graph(model_dir / "outside" / "1", seed_dir)
    (model_dir / "outside" / "1" / "tfaas.json").write_text(json.dumps(
        {"format": "graphdef", "model": "../../../secret.txt", "uid": "x" * 32}))
    for bad_name in ("bad name", "ünïcode", "-dash"):
        _plant_graph(model_dir / bad_name / "1", seed_dir)
    _plant_graph(model_dir / "good" / "1", seed_dir)

    reply = await tfaas.call("GET", "models")
    assert reply.code == 200, reply.body
    assert b"password-line" not in reply.body
    names = sorted(m["name"] for m in reply.json())
    assert names == ["absolute", "good", "linked", "traversal"], names
    for name in ("absolute", "linked", "traversal"):
        detail = await tfaas.call("GET", f"models/{name}")
        assert detail.code == 200 and b"password-line" not in detail.body
    doc = json.loads((seed_dir / "input.json").read_text())
    reply = await tfaas.predict({**doc, "model": "good"})
    assert reply.code == 200, reply.body
    reply = await tfaas.predict({**doc, "model": "good", "version": "\u00b2"})
    assert reply.code == 400 and "version" in reply.json()["error"]


async def test_the_tfaas_page_escapes_what_models_say(
    tfaas: TFaaSCaller, seed_dir: Path, model_dir: Path
) -> None:
    """The {base_url}tfaas/ page shows each model's description and shapes: markup in
    an uploaded params.json, or in a folder copied in by hand, is shown as text."""
    doc = json.loads((seed_dir / "params.json").read_text())
    uploaded = {**doc, "description": "<script>alert('upload')</script>"}
    assert (await tfaas.upload("vk", (seed_dir / "model.pb").read_bytes(),
                               params=uploaded)).code == 200
    _plant_graph(model_dir / "planted" / "1", seed_dir,
                 {"description": '<img src=x onerror="alert(1)">'})
    reply = await tfaas.call("GET", "")
    assert reply.code == 200 and "text/html" in reply.headers["Content-Type"]
    page = reply.body.decode()
    assert "<script>alert" not in page and "<img src=x" not in page, page
    assert "&lt;script&gt;alert(&#x27;upload&#x27;)&lt;/script&gt;" in page, page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page, page


def test_the_worker_environment_holds_no_credentials(tmp_path: Path) -> None:
    from servers import jupyter_server

    planted = {
        "JUPYTER_TOKEN": "jt-secret", "JUPYTERHUB_API_TOKEN": "hub-secret",
        "JPY_API_TOKEN": "jpy-secret", "JPY_SESSION_NAME": "nb.ipynb",
        "AWS_SECRET_ACCESS_KEY": "aws-secret", "DB_PASSWORD": "db-secret",
        "my_token": "lower-secret", "TFAAS_HARMLESS": "kept",
    }
    # the worker starts on first use: start it with the server, and wait for it
    with jupyter_server(tmp_path / "home", env=planted,
                        args=["--TFaaSApp.start_worker=True"]) as server:
        deadline = time.monotonic() + 180
        while not (pid := server.worker_pid()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert pid, "the worker should be running"
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    environ = dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    assert environ.get(b"TFAAS_HARMLESS") == b"kept"
    for name, value in planted.items():
        if name != "TFAAS_HARMLESS":
            assert name.encode() not in environ and value.encode() not in raw, name


# -- discovery trusts no planted runtime file; account tokens stay on this machine ------


def _runtime_file(folder: Path, pid: int, mode: int = 0o600, **info: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"url": "http://localhost:8888/", "hostname": "localhost", "port": 8888,
           "base_url": "/", "token": "tok", "pid": pid, "secure": False, "sock": ""}
    doc.update(info)
    path = folder / f"jpserver-{pid}.json"
    path.write_text(json.dumps(doc))
    path.chmod(mode)
    return path


def test_discovery_trusts_only_private_runtime_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfaas_jupyter.client import discovery
    from tfaas_jupyter.client.discovery import DiscoveryError, find_server

    pid = os.getpid()
    env = {"JPY_PARENT_PID": str(pid)}
    readable = _runtime_file(tmp_path / "a", pid, 0o644, token="planted")
    with pytest.raises(DiscoveryError):
        find_server(env=env, connection_file="", dirs=[readable.parent])
    assert discovery.running_servers([readable.parent]) == []
    foreign = _runtime_file(tmp_path / "c", pid, token="planted")  # 0600, another user's
    with monkeypatch.context() as patch:
        if os.geteuid() == 0:
            os.chown(foreign, 65534, 65534)
        else:  # only root may give a file away: be someone else instead
            patch.setattr(discovery.os, "geteuid", lambda: os.getuid() + 1)
        with pytest.raises(DiscoveryError):
            find_server(env=env, connection_file="", dirs=[foreign.parent])
        assert discovery.running_servers([foreign.parent]) == []
    real = _runtime_file(tmp_path / "real", pid, token="real-token", port=9911)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / real.name).symlink_to(real)
    with pytest.raises(DiscoveryError):
        find_server(env=env, connection_file="", dirs=[tmp_path / "b"])
    found = find_server(env=env, connection_file="", dirs=[real.parent])
    assert found.url == "http://127.0.0.1:9911/" and found.token == "real-token"
    assert "real-token" not in repr(found) and "real-token" not in str(found)
    # an address read from a URL keeps its ?token= and a key URL's key out of its repr
    from tfaas_jupyter.client.urls import parse_address

    key = "tfk_" + "k" * 43
    for url, secret in (("http://127.0.0.1:9911/?token=url-token", "url-token"),
                        (f"http://127.0.0.1:9911/tfaas/key/{key}/", key)):
        address = parse_address(url)
        assert secret in (address.url_token, address.key), url
        assert secret not in repr(address) and secret not in str(address), repr(address)


def test_environment_tokens_go_only_to_loopback_or_the_hub(tmp_path: Path) -> None:
    from tfaas_jupyter.client.discovery import find_server
    from tfaas_jupyter.client.urls import token_from_env

    pid = os.getpid()
    env = {"JPY_PARENT_PID": str(pid), "JUPYTERHUB_API_TOKEN": "hub-token",
           "JUPYTERHUB_SERVICE_URL": "http://hub.invalid:8888/user/alice/"}
    remote = _runtime_file(tmp_path / "r", pid, token="", hostname="remote.invalid", port=9000)
    assert find_server(env=env, connection_file="", dirs=[remote.parent]).token is None
    local = _runtime_file(tmp_path / "l", pid, token="", hostname="127.0.0.1", port=9000)
    assert find_server(env=env, connection_file="", dirs=[local.parent]).token == "hub-token"

    for url, expected in (("http://evil.example:8888/tfaas", None),
                          ("http://remote.invalid/tfaas", None),
                          ("http://127.0.0.1:8888/tfaas", "hub-token"),
                          ("http://localhost/tfaas", "hub-token"),
                          ("https://hub.invalid:8888/user/alice/tfaas", "hub-token")):
        assert token_from_env(env, url=url) == expected, url
    assert token_from_env({**env, "TFAAS_TOKEN": "chosen"}, url="http://evil.example/") == "chosen"


async def test_a_keras_lambda_layer_is_refused_not_run(tfaas: TFaaSCaller, tmp_path: Path) -> None:
    """safe_mode: a .keras file whose Lambda layer carries Python bytecode is a 400; the
    code never runs in the worker (it would create the marker file)."""
    import keras

    marker = tmp_path / "ran"
    # the path is a constant of the code (default arguments do not survive Keras's
    # serialisation, so such a lambda would fail to load even with safe_mode off)
    touch = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1] * 2")
    inp = keras.Input(shape=(2,))
    out = keras.layers.Lambda(touch)(inp)
    path = tmp_path / "lambda.keras"
    keras.Model(inp, out).save(str(path))
    marker.unlink()  # building the model in this process ran it once
    reply = await tfaas.upload("lambda", path.read_bytes(), filename="lambda.keras")
    assert reply.code == 400, reply.body
    assert "unreadable model" in reply.json()["error"]
    assert not marker.exists()
    assert (await tfaas.call("GET", "models")).json() == []


async def test_versions_that_cannot_be_loaded_answer_409_naming_them(
    tfaas: TFaaSCaller, seed_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    """Folders copied in by hand whose files no loader reads (a graph.pb that is no
    GraphDef, a corrupt SavedModel, a garbage .keras, a bad version 2 of a good model):
    every prediction route answers 409 naming the model, the version and the loader's
    reason, the listing and each model's details stay 200, and the other versions
    serve. A model that loads and then fails while running stays a 500."""
    import shutil

    import tfmodels

    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    garbage = b"\x00this is no model\xff" * 20
    _plant_graph(model_dir / "broken-graph" / "1", seed_dir, {"model": "graph.pb"})
    (model_dir / "broken-graph" / "1" / "graph.pb").write_bytes(garbage)
    (model_dir / "broken-sm" / "1").mkdir(parents=True)
    (model_dir / "broken-sm" / "1" / "saved_model.pb").write_bytes(garbage)
    (model_dir / "broken-keras" / "1").mkdir(parents=True)
    (model_dir / "broken-keras" / "1" / "m.keras").write_bytes(garbage)
    _plant_graph(model_dir / "vk" / "2", seed_dir)
    (model_dir / "vk" / "2" / "model.pb").write_bytes(garbage)
    failing = tfmodels.make_runtime_failure(tmp_path / "failing")
    shutil.copytree(failing.path, model_dir / "failing" / "1")
    await asyncio.sleep(1.2)  # past the repository index's recheck interval

    doc = json.loads((seed_dir / "input.json").read_text())
    row = doc["values"]
    for name, version in (("broken-graph", 1), ("broken-sm", 1), ("broken-keras", 1),
                          ("vk", 2)):
        reply = await tfaas.predict({**doc, "model": name})
        assert reply.code == 409, (name, reply.code, reply.body)
        error = reply.json()["error"]
        assert error.startswith(f"model {name!r} version {version} cannot be loaded: "), error
        assert error.endswith("; delete it or upload a new version"), error
        assert len(error) > len(f"model {name!r} version {version} cannot be loaded: "
                                "; delete it or upload a new version") + 5, error
        for path, body in (
            (f"v1/models/{name}:predict", {"instances": [row]}),
            (f"v2/models/{name}/infer", {"inputs": [{
                "name": "x", "shape": [1, len(row)], "datatype": "FP32", "data": row}]}),
            (f"v2/models/{name}", None),
            (f"v1/models/{name}/metadata", None),
            (f"models/{name}/openapi.json", None),
        ):
            reply = await tfaas.call("GET" if body is None else "POST", path,
                                     None if body is None else json.dumps(body).encode())
            assert reply.code == 409 and reply.json()["error"] == error, (path, reply.body)
    assert (await tfaas.predict({**doc, "model": "vk", "version": 1})).code == 200

    listing = await tfaas.call("GET", "models")
    assert listing.code == 200, listing.body
    assert sorted(m["name"] for m in listing.json()) == [
        "broken-graph", "broken-keras", "broken-sm", "failing", "vk"]
    for name in ("broken-graph", "broken-sm", "broken-keras", "vk", "failing"):
        assert (await tfaas.call("GET", f"models/{name}")).code == 200, name
    # the failed load shows where a version's status is shown
    details = (await tfaas.call("GET", "models/vk")).json()["version_details"]
    assert "load_error" not in details[0] and "GraphDef" in details[1]["load_error"]
    listed = {m["name"]: m for m in (await tfaas.call("GET", "models")).json()}
    assert listed["vk"]["load_error"] == details[1]["load_error"]
    assert "load_error" in listed["broken-sm"] and "load_error" not in listed["failing"]
    status = (await tfaas.call("GET", "v1/models/vk")).json()["model_version_status"]
    assert [(v["version"], v["state"]) for v in status] == [("1", "AVAILABLE"), ("2", "END")]
    assert status[1]["status"]["error_message"] == details[1]["load_error"]

    zeros = [0.0] * tfmodels.N_IN
    reply = await tfaas.predict({"model": "failing", "values": zeros})
    assert reply.code == 200 and reply.json() == zeros, reply.body
    reply = await tfaas.predict({"model": "failing", "values": [1.0] * tfmodels.N_IN})
    assert reply.code == 500, reply.body
    assert "NotFound" in reply.json()["error"] and "cannot be loaded" not in reply.body.decode()
