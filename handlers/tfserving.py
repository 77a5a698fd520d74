"""TensorFlow Serving's REST API under ``tfaas/v1/models``: status, metadata, ``:predict``."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server import keys
from tfaas_jupyter.server.protocols import tfserving

from .base import TFaaSHandler


class TFServingStatusHandler(TFaaSHandler):
    """``GET v1/models/NAME[/versions/N|/labels/L]``: ``model_version_status``."""

    endpoint = "v1"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def get(self, name: str, version: str | None = None, label: str | None = None) -> None:
        self._model_name = name
        self.write_json(tfserving.model_status(self.service, name, version or label,
                                               self._grant))


class TFServingMetadataHandler(TFaaSHandler):
    """``GET v1/models/NAME[/versions/N|/labels/L]/metadata``: the ``signature_def``."""

    endpoint = "v1"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def get(self, name: str, version: str | None = None, label: str | None = None) -> None:
        self._model_name = name
        self.write_json(await tfserving.model_metadata(self.service, name, version or label,
                                                       self._grant, self.stages))


class TFServingPredictHandler(TFaaSHandler):
    """``POST v1/models/NAME[/versions/N|/labels/L]:predict``: row or columnar format.

    A prediction route: when prediction-only keys exist, this handler is one of theirs.
    """

    endpoint = "v1"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def post(self, name: str, version: str | None = None, label: str | None = None) -> None:
        self._model_name = name
        model, rows, body = await tfserving.predict(
            self.service, name, version or label, self.request.body, self._grant, self.stages
        )
        self._model_name, self._rows = model, rows
        self.set_header("Content-Type", "application/json")
        self.finish(body)
