"""GET openapi.json: the OpenAPI 3.1 description of every ``{base_url}tfaas/`` route, and
GET models/NAME[/versions/N]/openapi.json: one model's prediction routes, exactly."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from tfaas_jupyter.server import keys
from tfaas_jupyter.server.names import check_version
from tfaas_jupyter.server.openapi import global_spec, load_spec, model_spec

from .base import TFaaSHandler

__all__ = ["ModelOpenAPIHandler", "OpenAPIHandler", "load_spec"]


class OpenAPIHandler(TFaaSHandler):
    endpoint = "openapi"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        url = url_path_join(self.base_url, "tfaas")
        self.write_json(global_spec(url, self.service.limits))


class ModelOpenAPIHandler(TFaaSHandler):
    """One model version's description, built from its signature (which loads it)."""

    endpoint = "openapi"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def get(self, name: str, version: str | None = None) -> None:
        self._model_name = name
        service = self.service
        mv = service.resolve(name, check_version(version), grant=self._grant)
        signature = await service.signature(mv, self.stages)
        latest = service.repository.get(name).version == mv.version
        url = url_path_join(self.base_url, "tfaas")
        self.write_json(model_spec(url, mv, signature, service.limits, latest=latest,
                                   is_default=service.default_model == name))
