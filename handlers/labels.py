"""Version labels: ``models/NAME/labels/LABEL`` (GET, PUT ``{"version": N}``, DELETE)."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server import keys, labels

from .base import TFaaSHandler


class LabelHandler(TFaaSHandler):
    """Where a label points; set or move it; remove it."""

    endpoint = "labels"
    key_scope = keys.MANAGE

    @web.authenticated
    @authorized
    async def get(self, name: str, label: str) -> None:
        self._model_name = name
        self.write_json(labels.get_label(self.service, name, label, self._grant))

    @web.authenticated
    @authorized
    async def put(self, name: str, label: str) -> None:
        self._model_name = name
        self.write_json(await labels.set_label(self.service, name, label, self.request.body,
                                                    self._grant))

    @web.authenticated
    @authorized
    async def delete(self, name: str, label: str) -> None:
        self._model_name = name
        self.write_json(await labels.delete_label(self.service, name, label, self._grant))
