"""One reading of the addresses and tokens a user gives the client, the CLI and discovery.

Any of these names the same server, and so the same TFaaS API at ``{base_url}tfaas/``:

- the server's URL: ``http://h:8888/``, ``http://h:8888/user/NAME/``, ``h:8888``;
- the API itself: ``http://h:8888/tfaas``, ``.../tfaas/``, ``.../tfaas/models``;
- an address copied from the browser: ``/lab``, ``/lab/tree/x.ipynb``, ``/doc/tree/...``,
  ``/tree/...``, ``/notebooks/...``, ``/edit/...``, ``/consoles/...``, ``/terminals/...``,
  ``/files/...``, ``/view/...``, ``/voila/...``, ``/api/...``, with or without
  ``?token=T``; under JupyterHub ``/user/NAME/lab/...``, ``/user/NAME/SERVER/lab/...``
  (a named server) and ``/hub/user/NAME/...``.

The base_url is what comes before the first of those page segments (after
``/user/NAME/``, so a user called ``lab`` keeps their name); ``/hub/user/NAME/`` is
``/user/NAME/``, where JupyterHub sends the browser too.

The token, in this order (the first one set wins):

1. the one given explicitly (``token=``, ``--token``, ``%tfaas connect --token``, or
   the token of the server's own runtime file that discovery found);
2. ``?token=`` in the URL;
3. the environment: ``TFAAS_TOKEN``, ``JUPYTER_TOKEN``, ``JPY_API_TOKEN``,
   ``JUPYTERHUB_API_TOKEN`` (the last two are set inside JupyterHub servers).

An empty explicit token (``token=""``) means "send none" and stops the search. The
environment's Jupyter and hub tokens open the whole account, so they go only to this
machine's loopback or to the JupyterHub's own host; ``TFAAS_TOKEN`` (the user's own
choice, e.g. a TFaaS key) goes wherever the user points it.

A key-bearing base URL (``.../tfaas/key/tfk_.../``, a TFaaS key's capability URL) is
kept whole: its API is under it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Mapping

__all__ = ["TOKEN_ENV_VARS", "ServerAddress", "choose_token", "is_own_host", "parse_address",
           "redact_key", "token_from_env"]

#: Environment variables a token is taken from, in this order.
TOKEN_ENV_VARS = ("TFAAS_TOKEN", "JUPYTER_TOKEN", "JPY_API_TOKEN", "JUPYTERHUB_API_TOKEN")

#: Path segments that start a page or an API of a Jupyter server (Lab, Notebook 7,
#: classic Notebook, jupyter_server, Voila) or TFaaS: the base_url is before them.
PAGE_SEGMENTS = frozenset({
    "tfaas", "lab", "doc", "tree", "notebooks", "edit", "consoles", "terminals",
    "files", "view", "voila", "api", "nbconvert", "retro", "login", "logout",
})

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")

#: A TFaaS key (``tfk_...``) wherever it appears (a key-bearing URL).
_KEY_RE = re.compile(r"tfk_[A-Za-z0-9_\-]+")


@dataclass(frozen=True)
class ServerAddress:
    """A Jupyter server as read from a URL: its root (``scheme://host:port{base_url}``)
    and the ``?token=`` the URL carried (None when it had none)."""

    root: str
    url_token: str | None = field(default=None, repr=False)  # secrets: never in a repr
    #: The key of a key-bearing URL (``{root}tfaas/key/KEY/``), None for a plain one.
    key: str | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return urllib.parse.urlsplit(self.root).path

    @property
    def tfaas_url(self) -> str:
        """The TFaaS API root, ``{root}tfaas/`` (``{root}tfaas/key/KEY/`` for a key URL)."""
        return self.root + "tfaas/" + (f"key/{self.key}/" if self.key else "")


def parse_address(url: str) -> ServerAddress:
    """The server a URL points at (see the module's docstring for the forms read).

    Raises ValueError for what is not an http(s) URL with a host, or a JupyterHub page
    that names no user's server (``/hub/home``).
    """
    text = url.strip()
    if not _SCHEME.match(text):
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r} "
                         "(give an http:// or https:// address)")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    tokens = urllib.parse.parse_qs(parts.query).get("token")
    base = _base_path(parts.path, url)
    rest = [seg for seg in parts.path[len(base):].split("/") if seg]
    key = rest[2] if len(rest) >= 3 and rest[:2] == ["tfaas", "key"] else None
    return ServerAddress(
        urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, base, "", "")),
        tokens[0] if tokens and tokens[0] else None,
        key,
    )


def _base_path(path: str, url: str) -> str:
    """``/user/x/lab/tree/a.ipynb`` → ``/user/x/``: the path up to the first page segment."""
    segments = [s for s in path.split("/") if s]
    if segments[:1] == ["hub"]:
        if segments[1:2] != ["user"] or len(segments) < 3:
            raise ValueError(f"{url!r} is a JupyterHub page, not a user's server: give the "
                             "address of the server (…/user/NAME/ or a notebook's address)")
        segments = segments[1:]
    # A JupyterHub prefix /user/NAME/ is kept whole, whatever NAME is.
    start = 2 if len(segments) >= 2 and segments[0] == "user" else 0
    end = next((i for i in range(start, len(segments)) if segments[i] in PAGE_SEGMENTS),
               len(segments))
    return "/" + "".join(f"{s}/" for s in segments[:end])


def is_own_host(url: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``url`` is this machine's loopback or the JupyterHub's own host (where
    the environment's Jupyter and hub tokens may go)."""
    env = os.environ if env is None else env
    host = urllib.parse.urlsplit(url if _SCHEME.match(url) else "http://" + url).hostname
    if host in (None, ""):
        return False
    if host == "localhost":
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    for var in ("JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_URL", "JUPYTERHUB_BASE_URL",
                "JUPYTERHUB_PUBLIC_URL", "JUPYTERHUB_PUBLIC_HUB_URL"):
        hub = urllib.parse.urlsplit(env.get(var) or "").hostname
        if hub and hub == host:
            return True
    return False


def token_from_env(env: Mapping[str, str] | None = None, url: str | None = None
                   ) -> str | None:
    """The first token set among :data:`TOKEN_ENV_VARS` (``os.environ`` by default).

    Given the ``url`` it is for, only ``TFAAS_TOKEN`` is answered for a host that is
    neither loopback nor the hub's (see :func:`is_own_host`)."""
    env = os.environ if env is None else env
    own = url is None or is_own_host(url, env)
    for name in TOKEN_ENV_VARS:
        if env.get(name) and (own or name == "TFAAS_TOKEN"):
            return env[name]
    return None


def choose_token(explicit: str | None, address: ServerAddress | None = None,
                 env: Mapping[str, str] | None = None) -> str | None:
    """The token to send, in the documented order: ``explicit`` (``""``: none), the
    address's ``?token=``, then the environment (for the address's host). None when
    there is none."""
    if explicit is not None:
        return explicit or None
    if address is not None and address.url_token:
        return address.url_token
    return token_from_env(env, address.root if address is not None else None)


def redact_key(text: str) -> str:
    """``text`` with any TFaaS key replaced by ``[secret]`` (for reprs and messages)."""
    return _KEY_RE.sub("[secret]", text)


def graph_path(base_url: str, name: str, version: str | int | None = None) -> str:
    """The graph view of model ``name`` (its latest version, or ``version``) as a path
    under the server's ``base_url`` (a path, or a URL whose path is taken): what a
    browser showing that server's pages asks for, behind a hub's proxy too."""
    return _model_page_path(base_url, "graph", name, version)


def explorer_path(base_url: str, name: str, version: str | int | None = None) -> str:
    """The API explorer (Swagger UI) on model ``name``'s description, as a path under
    the server's ``base_url``, like :func:`graph_path`."""
    return _model_page_path(base_url, "explorer", name, version)


def _model_page_path(base_url: str, page: str, name: str, version: str | int | None) -> str:
    query: dict[str, str] = {"model": name}
    if version is not None:
        query["version"] = str(version)
    path = urllib.parse.urlsplit(base_url).path.rstrip("/")
    return f"{path}/tfaas/{page}/?{urllib.parse.urlencode(query)}"
