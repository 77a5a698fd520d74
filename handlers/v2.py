"""The Open Inference Protocol (KServe V2) under ``tfaas/v2``: health, metadata, infer."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server import keys, v2

from .base import TFaaSHandler


class V2ServerMetadataHandler(TFaaSHandler):
    """``GET v2``: name, version and extensions (binary_tensor_data)."""

    endpoint = "v2"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(v2.server_metadata())


class V2HealthHandler(TFaaSHandler):
    """``GET v2/health/live`` and ``v2/health/ready``: 200 while the server serves."""

    endpoint = "v2"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def get(self) -> None:
        probe = self.request.path.rstrip("/").rsplit("/", 1)[-1]
        self.write_json({probe: True})


class V2ModelMetadataHandler(TFaaSHandler):
    """``GET v2/models/NAME[/versions/V]``: inputs and outputs with V2 datatypes."""

    endpoint = "v2"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def get(self, name: str, version: str | None = None) -> None:
        self._model_name = name
        self.write_json(await v2.model_metadata(self.service, name, version))


class V2ModelReadyHandler(TFaaSHandler):
    """``GET v2/models/NAME[/versions/V]/ready``: 200 once the version is loaded."""

    endpoint = "v2"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def get(self, name: str, version: str | None = None) -> None:
        self._model_name = name
        self.write_json(await v2.model_ready(self.service, name, version))


class V2InferHandler(TFaaSHandler):
    """``POST v2/models/NAME[/versions/V]/infer``: JSON tensors or the binary extension.

    A prediction route: when prediction-only keys exist, this handler is one of theirs.
    """

    endpoint = "v2"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def post(self, name: str, version: str | None = None) -> None:
        self._model_name = name
        answer = await v2.infer(
            self.service, name, version, self.request.body,
            self.request.headers.get(v2.HEADER_LENGTH),
        )
        self._rows = answer.rows
        if answer.binary:
            self.set_header(v2.HEADER_LENGTH, str(len(answer.header)))
            self.set_header("Content-Type", "application/octet-stream")
            self.finish(b"".join([answer.header, *answer.binary]))
        else:
            self.set_header("Content-Type", "application/json")
            self.finish(answer.header)
