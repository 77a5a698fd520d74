"""The Open Inference Protocol (KServe V2) under ``tfaas/v2``: health, metadata, infer."""

from __future__ import annotations

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.http1connection import HTTP1Connection
from tornado.iostream import StreamClosedError

from tfaas_jupyter.server import keys, triton
from tfaas_jupyter.server.errors import PayloadTooLarge
from tfaas_jupyter.server.protocols import v2
from tfaas_jupyter.server.protocols.v2stream import StreamedInfer
from tfaas_jupyter.v2binary import HEADER_LENGTH

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
        self.write_json(await v2.model_metadata(self.service, name, version, self._grant,
                                                self.stages))


class V2ModelReadyHandler(TFaaSHandler):
    """``GET v2/models/NAME[/versions/V]/ready``: 200 once the version is loaded."""

    endpoint = "v2"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def get(self, name: str, version: str | None = None) -> None:
        self._model_name = name
        self.write_json(await v2.model_ready(self.service, name, version, self._grant,
                                             self.stages))


class V2ModelConfigHandler(TFaaSHandler):
    """``GET v2/models/NAME[/versions/V]/config``: Triton's model configuration (JSON), the
    one the export's ``config.pbtxt`` holds."""

    endpoint = "v2"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def get(self, name: str, version: str | None = None) -> None:
        self._model_name = name
        self.write_json(await triton.served_config(self.service, name, version, self._grant))


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
                                    self.request.headers.get(HEADER_LENGTH),
                                    self._grant, self.stages,
                                    self.settings.get("tfaas_shm")))

    def _answer(self, answer: v2.InferAnswer) -> None:
        self._rows = answer.rows
        if answer.binary:  # (APIHandler.finish sets the Content-Type, JSON by default)
            self.set_header(HEADER_LENGTH, str(len(answer.header)))
            self.finish(b"".join([answer.header, *answer.binary]),
                        set_content_type="application/octet-stream")
        else:
            self.finish(answer.header)


@web.stream_request_body
class V2StreamedInferHandler(V2InferHandler):
    """The same route for a big request with binary tensors: its body is streamed
    (:mod:`tfaas_jupyter.server.protocols.v2stream`) and scored in pieces while it arrives.

    So authentication and authorization happen in ``prepare``, before any byte of the
    body reaches the model worker. ``prepare`` then reads the body itself, straight
    from the connection into the tensor's buffer (:meth:`_read_body`). Streaming costs
    a small request a few more turns of the event loop, which is why only bodies of at
    least :data:`~tfaas_jupyter.server.protocols.v2stream.STREAM_MIN_BYTES` come here.
    """

    _stream: StreamedInfer | None = None

    async def prepare(self) -> None:  # type: ignore[override]  # as APIHandler.prepare
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
        keys.check_model_access(self._grant, name)  # a key for other models: refused now
        headers = self.request.headers
        # both present and plain: worth_streaming chose this handler by them
        content_length = int(headers["Content-Length"])
        max_body = getattr(self.serverapp, "max_body_size", None)
        if max_body is not None and content_length > max_body:
            raise PayloadTooLarge(f"the body ({content_length} bytes) is larger than the "
                                  f"server's max_body_size ({max_body} bytes)")
        self._stream = StreamedInfer(
            self.service, name, version, header_length=headers[HEADER_LENGTH],
            content_length=content_length, grant=self._grant, stages=self.stages,
        )
        await self._read_body(self._stream, content_length)

    async def _read_body(self, stream: StreamedInfer, content_length: int) -> None:
        """Read the body from the connection into ``stream``'s buffers.

        Tornado would hand it over in chunks of 64 KiB, each copied twice on the way
        (into its read buffer, then into a ``bytes``) before ours copied it into the
        tensor; ``IOStream.read_into`` receives the socket's bytes where the tensor goes.
        That halved the server's CPU per 100,000-row request (benchmarks/README.md).
        Whatever this does not read (the rest of a request that failed, or of one
        whose client left) is left to Tornado, which reads and drops it: the request's
        ``Content-Length`` is set to what remains before ``prepare`` returns.
        """
        connection = self.request.connection
        assert isinstance(connection, HTTP1Connection)
        io = connection.stream
        headers = self.request.headers
        if headers.get("Expect") == "100-continue":  # as Tornado would, before the body
            io.write(b"HTTP/1.1 100 (Continue)\r\n\r\n")
            del headers["Expect"]
        remaining = content_length
        try:
            head = bytearray(stream.header_length)
            await io.read_into(head)
            remaining -= len(head)
            await stream.start(bytes(head))
            while remaining and (buffer := stream.body_buffer()) is not None:
                # Tornado's read_into fills any writable buffer (typed as bytearray)
                got = await io.read_into(buffer[:remaining],  # type: ignore[arg-type]
                                         partial=True)
                remaining -= got
                stream.advanced(got)
        except StreamClosedError:
            pass  # the client left: Tornado reads on, fails and closes the request
        headers["Content-Length"] = str(remaining)

    def data_received(self, chunk: bytes) -> None:
        """The rest of a body that :meth:`_read_body` did not keep: dropped."""

    @web.authenticated
    @authorized
    async def post(self, name: str, version: str | None = None) -> None:
        assert self._stream is not None
        self._answer(await self._stream.answer())

    def on_connection_close(self) -> None:
        if self._stream is not None:
            self._stream.close()  # a client gone mid-body: its pieces are cancelled
        super().on_connection_close()
