"""Find the Jupyter server a kernel runs under: its local URL, base_url and token.

A notebook user should type ``%tfaas models`` and get an answer, with nothing to
configure. The kernel knows little about its server, so we look in this order:

1. an explicit choice: :func:`connect` (``%tfaas connect URL``) or the environment
   variable ``TFAAS_URL``; either may be any address of the server, copied from the
   browser too (read by :func:`tfaas_jupyter.client.urls.parse_address`);
2. the server's runtime file ``jpserver-<JPY_PARENT_PID>.json``: jupyter_client
   gives a kernel its server's pid in ``JPY_PARENT_PID``, and the server writes that
   file into its runtime dir. We look next to the kernel's connection file first
   (the server writes both into the same dir; in SWAN the kernel's own
   ``jupyter_runtime_dir()`` differs from the server's because the kernel runs
   another Python with another ``JUPYTER_DATA_DIR``), then in ``jupyter_runtime_dir()``;
3. JupyterHub: ``JUPYTERHUB_SERVICE_URL`` (the single-user server's local bind URL)
   and ``JUPYTERHUB_SERVICE_PREFIX`` with ``JUPYTERHUB_API_TOKEN``;
4. every other running server (``jpserver-*.json`` whose pid is alive), asked for
   its ``/api/sessions``: the one running this kernel's id is ours.

Tokens follow :mod:`tfaas_jupyter.client.urls`'s one order: the token given (to
:func:`connect`, or the runtime file's), the URL's ``?token=``, then ``TFAAS_TOKEN``,
``JUPYTER_TOKEN``, ``JPY_API_TOKEN``, ``JUPYTERHUB_API_TOKEN``.

We always talk to the local URL (``127.0.0.1:port`` + base_url), never a public
proxy URL: the kernel and the server share a host.

This module imports neither TensorFlow nor jupyter_server (a SWAN kernel's Python
may have neither, or other versions): only the standard library, and jupyter_core
and ipykernel when they are there.
"""

from __future__ import annotations

import json
import os
import re
import stat
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..pids import pid_alive
from .urls import ServerAddress, choose_token, parse_address, token_from_env

__all__ = [
    "DiscoveryError",
    "ServerInfo",
    "connect",
    "disconnect",
    "explicit_server",
    "find_server",
    "kernel_id",
    "local_url",
    "parse_server_url",
    "runtime_dirs",
    "running_servers",
    "use_server",
]

#: Local hosts a server may report for its bind address; all reachable as 127.0.0.1.
_ANY_HOSTS = {"", "*", "0.0.0.0", "::", "[::]", "localhost", "127.0.0.1", "::1", "[::1]"}

CONNECT_HELP = (
    "connect explicitly with: %tfaas connect http://127.0.0.1:8888/ --token TOKEN "
    "(the server's URL, base_url included, e.g. http://127.0.0.1:8888/user/NAME/), "
    "or set TFAAS_URL and TFAAS_TOKEN"
)


class DiscoveryError(RuntimeError):
    """No Jupyter server was found; the message says what was tried and how to connect."""


@dataclass
class ServerInfo:
    """Where a Jupyter server answers: ``url`` is the local root, base_url included."""

    url: str
    token: str | None = field(default=None, repr=False)  # never in a repr or a log
    source: str = ""
    #: a URL to show users for use outside the kernel (defaults to ``url``)
    public_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def base_url(self) -> str:
        return urllib.parse.urlsplit(self.url).path or "/"

    @property
    def tfaas_url(self) -> str:
        """The TFaaS API root, ``{url}tfaas/``."""
        return ServerAddress(self.url).tfaas_url

    def describe(self) -> str:
        return f"{self.url} ({self.source})"


# -- explicit choice -----------------------------------------------------------

_explicit: ServerInfo | None = None


def parse_server_url(url: str, token: str | None = None,
                     env: Mapping[str, str] | None = None) -> ServerInfo:
    """The server of any address a user may paste (the server root, ``.../tfaas/``, a
    page under it, the ``?token=`` link Jupyter prints; see
    :func:`~tfaas_jupyter.client.urls.parse_address`), its token chosen in the one
    order (``token``, ``?token=``, the environment ``env``, default ``os.environ``)."""
    try:
        address = parse_address(url)
    except ValueError as exc:
        raise DiscoveryError(str(exc)) from None
    return ServerInfo(address.root, choose_token(token, address, env), "connect")


def explicit_server() -> ServerInfo | None:
    """The server chosen with :func:`connect` or :func:`use_server`; None while
    :func:`find_server` looks for the kernel's own."""
    return _explicit


def use_server(server: ServerInfo | None) -> None:
    """Make ``server`` the explicit choice (None: none, discovery runs again). With
    :func:`explicit_server`, a caller can try a :func:`connect` and put the previous
    choice back when the new server does not answer."""
    global _explicit
    _explicit = server


def connect(url: str, token: str | None = None) -> ServerInfo:
    """Use this server from now on (``%tfaas connect``), whatever discovery would find."""
    server = parse_server_url(url, token)
    use_server(server)
    return server


def disconnect() -> None:
    """Forget :func:`connect`; discovery runs again."""
    use_server(None)


# -- helpers -------------------------------------------------------------------


def _connection_file() -> str | None:
    try:
        import ipykernel
    except Exception:
        return None
    try:
        return ipykernel.get_connection_file()
    except Exception:  # not in a kernel
        return None


def kernel_id(connection_file: str | None = None) -> str | None:
    """This kernel's id, from its connection file name ``kernel-<id>.json``."""
    path = connection_file if connection_file is not None else _connection_file()
    if not path:
        return None
    match = re.match(r"kernel-(.+)\.json$", os.path.basename(path))
    return match.group(1) if match else None


def runtime_dirs(connection_file: str | None = None,
                 env: Mapping[str, str] | None = None) -> list[Path]:
    """Where to look for ``jpserver-*.json``: the connection file's dir first, then
    ``jupyter_runtime_dir()`` (or ``$JUPYTER_RUNTIME_DIR`` if jupyter_core is missing)."""
    env = os.environ if env is None else env
    found: list[Path] = []
    path = connection_file if connection_file is not None else _connection_file()
    if path:
        found.append(Path(path).resolve().parent)
    runtime: str | None = None
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime = jupyter_runtime_dir()
    except Exception:
        runtime = env.get("JUPYTER_RUNTIME_DIR")
    if runtime:
        found.append(Path(runtime).resolve())
    unique: list[Path] = []
    for d in found:
        if d not in unique:
            unique.append(d)
    return unique


def local_url(info: Mapping[str, Any]) -> str | None:
    """The local root URL of a server described by its runtime file: the loopback
    address, its port and base_url. ``None`` for a server on a UNIX socket only."""
    if info.get("sock") and not info.get("port"):
        return None
    port = info.get("port")
    base_url = info.get("base_url") or "/"
    if not base_url.startswith("/"):
        base_url = "/" + base_url
    if not base_url.endswith("/"):
        base_url += "/"
    scheme = "https" if info.get("secure") else "http"
    host = str(info.get("hostname") or "")
    if host in _ANY_HOSTS or not port:
        if not port:  # fall back to the URL the server wrote
            return _normalise_url(str(info.get("url") or ""), base_url)
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{int(port)}{base_url}"


def _normalise_url(url: str, prefix: str | None = None) -> str | None:
    """A bind URL as a local server root: ``http://*:8888/user/x/`` →
    ``http://127.0.0.1:8888/user/x/``; ``prefix`` is the base_url when the URL has no
    path of its own."""
    if not url:
        return None
    try:
        parts = urllib.parse.urlsplit(parse_address(url).root)
    except ValueError:
        return None
    netloc = parts.netloc
    if (parts.hostname or "") in _ANY_HOSTS:
        netloc = "127.0.0.1" + (f":{parts.port}" if parts.port else "")
    path = parts.path
    if path == "/" and prefix:
        path = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))


def _read_json(path: Path) -> dict[str, Any] | None:
    """A server's runtime file, if it can be trusted: a regular file (not a link) of this
    user that no one else may read or write (Jupyter writes them 0600). Another user
    could otherwise plant one to receive our token or feed us theirs."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid()
                or st.st_mode & 0o077 or st.st_size > 1 << 20):
            return None
        try:
            doc = json.loads(fh.read())
        except ValueError:
            return None
    return doc if isinstance(doc, dict) else None


def _from_runtime(info: Mapping[str, Any], source: str, env: Mapping[str, str],
                  path: Path | None = None) -> ServerInfo | None:
    url = local_url(info)
    if url is None:
        return None
    # The runtime file's token is the explicit one; a server with none (a password,
    # hub auth) takes it from the environment, which goes to this machine only.
    token = choose_token(info.get("token") or None, parse_address(url), env)
    return ServerInfo(url, token, source,
                      extra={"runtime_file": str(path) if path else None,
                             "pid": info.get("pid")})


def running_servers(dirs: Iterable[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """``jpserver-*.json`` (and the old ``nbserver-*.json``) files in ``dirs`` whose
    pid is alive, newest first."""
    seen: set[Path] = set()
    found: list[tuple[float, Path, dict[str, Any]]] = []
    for d in dirs:
        try:
            candidates = list(d.glob("jpserver-*.json")) + list(d.glob("nbserver-*.json"))
        except OSError:
            continue
        for path in candidates:
            if path in seen:
                continue
            seen.add(path)
            info = _read_json(path)
            if not info or not pid_alive(info.get("pid"), ours=True):
                continue
            try:
                mtime = path.stat().st_mtime
            except OSError:
                mtime = 0.0
            found.append((mtime, path, info))
    found.sort(key=lambda t: -t[0])
    return [(p, i) for _, p, i in found]


def _kernel_in_sessions(server: ServerInfo, kid: str, timeout: float) -> bool:
    """Whether ``server`` runs kernel ``kid`` (GET /api/sessions and /api/kernels/ID)."""
    headers = {"Authorization": f"token {server.token}"} if server.token else {}
    for path in (f"api/kernels/{kid}", "api/sessions"):
        request = urllib.request.Request(server.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                doc = json.loads(response.read())
        except (OSError, ValueError, urllib.error.URLError):
            continue
        if isinstance(doc, dict) and doc.get("id") == kid:
            return True
        if isinstance(doc, list) and any(
            isinstance(s, dict) and (s.get("kernel") or {}).get("id") == kid for s in doc
        ):
            return True
    return False


# -- discovery -----------------------------------------------------------------


def find_server(*, env: Mapping[str, str] | None = None,
                connection_file: str | None = None,
                dirs: Iterable[Path] | None = None,
                timeout: float = 3.0) -> ServerInfo:
    """The server this kernel should talk to, or :class:`DiscoveryError` saying how
    to connect. ``env``, ``connection_file`` and ``dirs`` default to this process's
    (tests pass fakes)."""
    env = os.environ if env is None else env
    if _explicit is not None:
        return _explicit
    if env.get("TFAAS_URL"):
        given = parse_server_url(env["TFAAS_URL"], None, env)
        given.source = "TFAAS_URL"
        return given

    if connection_file is None:
        connection_file = _connection_file()
    search = list(dirs) if dirs is not None else runtime_dirs(connection_file, env)
    tried: list[str] = []

    parent = env.get("JPY_PARENT_PID")
    if parent and parent.isdigit():
        for d in search:
            for prefix in ("jpserver", "nbserver"):
                path = d / f"{prefix}-{parent}.json"
                info = _read_json(path) if path.is_file() else None
                if info:
                    server = _from_runtime(info, "runtime file", env, path)
                    if server is not None:
                        return server
        tried.append(f"no jpserver-{parent}.json (JPY_PARENT_PID) in "
                     + ", ".join(str(d) for d in search))
    else:
        tried.append("no JPY_PARENT_PID")

    hub_url = env.get("JUPYTERHUB_SERVICE_URL")
    hub_prefix = env.get("JUPYTERHUB_SERVICE_PREFIX")
    if hub_url or hub_prefix:
        url = _normalise_url(hub_url, hub_prefix) if hub_url else None
        if url is None and hub_prefix:
            port = env.get("JUPYTERHUB_SERVICE_PORT") or env.get("JUPYTER_PORT") or "8888"
            url = _normalise_url(f"http://127.0.0.1:{port}", hub_prefix)
        if url:
            return ServerInfo(url, token_from_env(env), "JupyterHub")
    tried.append("not under JupyterHub")

    kid = kernel_id(connection_file)
    servers = running_servers(search)
    if kid and servers:
        for path, info in servers:
            server = _from_runtime(info, "sessions", env, path)
            if server is not None and _kernel_in_sessions(server, kid, timeout):
                return server
        tried.append(f"none of {len(servers)} running server(s) runs kernel {kid}")
    elif not servers:
        tried.append("no running server found")
    else:
        tried.append("not in a kernel")
    raise DiscoveryError(
        "tfaas: cannot find the Jupyter server of this kernel ("
        + "; ".join(tried) + "); " + CONNECT_HELP
    )
