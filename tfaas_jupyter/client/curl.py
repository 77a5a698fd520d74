"""The curl line for a prediction: what ``%tfaas curl`` prints and the model browser's
**Copy curl** shows (the JupyterLab panel writes the same line in
labextension/src/curl.ts)."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..examplerow import example_request
from ..hub import HUB_TOKEN_VAR, public_server_url
from .discovery import ServerInfo

__all__ = ["curl_command", "example_request"]


def curl_command(server: ServerInfo, name: str, model: dict[str, Any] | None = None,
                 *, header_file: Path | None = None, token_var: str = "JUPYTER_TOKEN",
                 request: dict[str, Any] | None = None) -> str:
    """One shell line doing a prediction with ``model`` on ``server`` (``request``, or
    an example row): the full URL with its base_url, the token as ``$JUPYTER_TOKEN``,
    or read by curl from ``header_file`` (``-H @FILE``, curl 7.55 or later), so the
    line itself never holds it. Under a hub (a server found, not connected by hand)
    the URL is the hub's public one and the token a hub API token,
    ``$JUPYTERHUB_API_TOKEN``."""
    body = json.dumps(request or example_request(name, model), separators=(",", ":"))
    hub_url = None if server.source in ("connect", "TFAAS_URL") else public_server_url()
    if hub_url and not server.public_url:
        server = replace(server, public_url=hub_url)
        token_var = HUB_TOKEN_VAR
    parts = ["curl", "-sS"]
    if header_file is not None:
        parts += ["-H", shlex.quote(f"@{header_file}")]
    else:
        parts += ["-H", f'"Authorization: token ${token_var}"']
    parts += ["-H", shlex.quote("Content-Type: application/json"), "-d", shlex.quote(body)]
    parts.append(shlex.quote((server.public_url or server.url) + "tfaas/json"))
    return " ".join(parts)
