"""GET openapi.json: the OpenAPI 3 description of every ``{base_url}tfaas/`` endpoint."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib.resources import files
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from .base import TFaaSHandler


@lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    """The packaged ``tfaas_jupyter/server/openapi.json``."""
    return json.loads(files("tfaas_jupyter.server").joinpath("openapi.json").read_text("utf-8"))


class OpenAPIHandler(TFaaSHandler):
    endpoint = "openapi"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        spec = copy.deepcopy(load_spec())
        spec["servers"] = [
            {"url": url_path_join(self.base_url, "tfaas"),
             "description": "this Jupyter server's TFaaS"}
        ]
        self.write_json(spec)
