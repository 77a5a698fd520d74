"""models, params and delete: what is in the repository."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server import keys
from tfaas_jupyter.server.errors import BadRequest
from tfaas_jupyter.server.uploads import parse_params

from .base import TFaaSHandler


class ModelsHandler(TFaaSHandler):
    """The list of models: each one's params.json keys plus versions, format, signature."""

    endpoint = "models"
    key_scope = keys.MANAGE

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(self.catalogue.models(self._grant))

    # The 2018 client listed models with POST {}.
    post = get


class ModelHandler(TFaaSHandler):
    """One model with all its versions."""

    endpoint = "models"
    key_scope = keys.MANAGE

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self._model_name = name
        self.write_json(self.catalogue.model_detail(name, self._grant))


class ParamsHandler(TFaaSHandler):
    """GET a model's params.json; POST params to make a model the default."""

    endpoint = "params"
    key_scope = keys.MANAGE

    @web.authenticated
    @authorized
    async def get(self, name: str | None = None, version: str | None = None) -> None:
        name = name or self.get_query_argument("model", None)
        self._model_name = name
        self.write_json(self.catalogue.params(name, version, self._grant))

    @web.authenticated
    @authorized
    async def post(self, name: str | None = None, version: str | None = None) -> None:
        params = parse_params(self.request.body)
        if name:
            params.setdefault("name", name)
        if version is not None:  # params/NAME/VERSION: that version must exist
            self.service.resolve(name, version, grant=self._grant)
        chosen = self.catalogue.set_default(params, self._grant)
        self._model_name = chosen
        self.write_json({"default_model": chosen})


class DeleteHandler(TFaaSHandler):
    """DELETE with a form field ``model`` (the original client), or delete/NAME[/VERSION]."""

    endpoint = "delete"
    key_scope = keys.MANAGE

    @web.authenticated
    @authorized
    async def delete(self, name: str | None = None, version: str | None = None) -> None:
        if name is None:
            name = self.get_body_argument("model", None) or self.get_argument("model", None)
            if name is None and self.request.body:
                try:
                    doc = parse_params(self.request.body)
                except BadRequest:
                    doc = {}
                name = doc.get("model") or doc.get("name")
                version = version or doc.get("version")
            version = version or self.get_body_argument("version", None) or self.get_argument(
                "version", None
            )
        self._model_name = name
        self.write_json(await self.catalogue.delete(name, version, self._grant))

    # Some clients cannot send DELETE; POST does the same here.
    post = delete
