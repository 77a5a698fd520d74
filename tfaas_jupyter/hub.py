"""Where users outside reach a JupyterHub single-user server: the hub's public URL.

Inside the server (and its kernels) the local bind URL works; a line printed for a
shell elsewhere needs the address the hub's proxy answers on. JupyterHub gives each
single-user server ``JUPYTERHUB_PUBLIC_URL`` (set when the hub has ``public_url``
configured), the server's public URL with the user's prefix. Plain Python, no
imports of the package's sides: the server's page and the client's magics share it.
"""

from __future__ import annotations

import os
from typing import Mapping
from urllib.parse import urlsplit, urlunsplit

#: the token variable a line for outside the hub names: a hub API token
HUB_TOKEN_VAR = "JUPYTERHUB_API_TOKEN"


def public_server_url(env: Mapping[str, str] | None = None) -> str | None:
    """The server's public URL ending with ``/`` (``https://hub/user/alice/``), or None
    when not under a hub that knows its public URL. A value without a path (only the
    host) gets the user's ``JUPYTERHUB_SERVICE_PREFIX``."""
    env = os.environ if env is None else env
    public = (env.get("JUPYTERHUB_PUBLIC_URL") or "").strip()
    if not public or "://" not in public:
        return None
    parts = urlsplit(public)
    path = parts.path
    if path in ("", "/"):
        path = env.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
    if not path.startswith("/"):
        path = "/" + path
    if not path.endswith("/"):
        path += "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
