"""The Open Inference Protocol (KServe V2) under ``tfaas/v2``: health, metadata, infer."""

from __future__ import annotations

import contextvars
from typing import Awaitable

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server import keys, v2
from tfaas_jupyter.server.v2stream import StreamedInfer

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
    Big binary requests go to :class:`V2StreamedInferHandler` instead (see
    :func:`tfaas_jupyter.handlers.streamed_rules`).
    """

    endpoint = "v2"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def post(self, name: str, version: str | None = None) -> None:
        self._model_name = name
        self._answer(await v2.infer(self.service, name, version, self.request.body,
                                    self.request.headers.get(v2.HEADER_LENGTH)))

    def _answer(self, answer: v2.InferAnswer) -> None:
        self._rows = answer.rows
        if answer.binary:
            self.set_header(v2.HEADER_LENGTH, str(len(answer.header)))
            self.set_header("Content-Type", "application/octet-stream")
            self.finish(b"".join([answer.header, *answer.binary]))
        else:
            self.set_header("Content-Type", "application/json")
            self.finish(answer.header)


@web.stream_request_body
class V2StreamedInferHandler(V2InferHandler):
    """The same route for a big request with binary tensors: its body is streamed
    (:mod:`tfaas_jupyter.server.v2stream`) and scored in pieces while it arrives.

    So authentication and authorization happen in ``prepare``, before any byte of the
    body reaches the model worker. Streaming costs a small request a few more turns of
    the event loop, which is why only bodies of at least
    :data:`~tfaas_jupyter.server.v2stream.STREAM_MIN_BYTES` come here.
    """

    _stream: StreamedInfer | None = None

    async def prepare(self) -> None:
        self._stream = None
        await super().prepare()
        if self.request.method != "POST":
            return
        user = self.current_user
        if not user or not await ensure_async(
            self.authorizer.is_authorized(self, user, "write", self.auth_resource)
        ):
            raise web.HTTPError(403, "not authorized to run predictions")
        name, version = self.path_kwargs["name"], self.path_kwargs.get("version")
        self._model_name = name
        keys.check_model_access(name)  # a key for other models: refused before the body
        headers = self.request.headers
        self._stream = StreamedInfer(
            self.service, name, version,
            # both present: worth_streaming chose this handler by them
            header_length=headers[v2.HEADER_LENGTH],
            content_length=int(headers["Content-Length"]),
            context=contextvars.copy_context(),
        )

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self._stream.received(chunk) if self._stream is not None else None

    @web.authenticated
    @authorized
    async def post(self, name: str, version: str | None = None) -> None:
        assert self._stream is not None
        self._answer(await self._stream.answer())

    def on_connection_close(self) -> None:
        if self._stream is not None:
            self._stream.close()  # a client gone mid-body: its pieces are cancelled
        super().on_connection_close()
