"""POST json, proto and image: predictions."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server import keys
from tfaas_jupyter.server.errors import BadRequest
from tfaas_jupyter.server.multipart import FormStream
from tfaas_jupyter.server.protocols import original

from .base import TFaaSHandler


class JsonHandler(TFaaSHandler):
    """``{"keys", "values", "model"}`` in, the list of output values out."""

    endpoint = "json"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def post(self) -> None:
        name, rows, body = await original.predict_json(self.service, self.request.body,
                                                       self._grant, self.stages)
        self._model_name, self._rows = name, rows
        self.finish(body)


class ProtoHandler(TFaaSHandler):
    """A serialized ``tfaaspb.Row`` in, a serialized ``tfaaspb.Predictions`` out."""

    endpoint = "proto"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def post(self) -> None:
        name, body = await original.predict_proto(self.service, self.request.body, self._grant,
                                                   self.stages)
        self._model_name, self._rows = name, 1
        self.finish(body, set_content_type="application/octet-stream")


@web.stream_request_body
class ImageHandler(TFaaSHandler):
    """Multipart ``image`` (png or jpg) and ``model``: the top labels, as the original.

    The form is parsed as its body arrives, by the server's one multipart parser
    (:class:`~tfaas_jupyter.server.multipart.FormStream`, as for uploads), the image
    held in memory (bounded by the server's ``max_body_size``).
    """

    endpoint = "image"
    key_scope = keys.PREDICT
    _form: FormStream | None = None
    _form_error: Exception | None = None

    async def prepare(self) -> None:  # type: ignore[override]  # as APIHandler.prepare
        self._form = None
        self._form_error = None
        await super().prepare()
        if self.request.method != "POST":
            return
        content_type = self.request.headers.get("Content-Type", "")
        if "form-data" not in content_type:
            raise BadRequest("expected a multipart/form-data body with 'image' and 'model'")
        self._form = FormStream(content_type, None)

    def data_received(self, chunk: bytes) -> None:
        if self._form is None or self._form_error is not None:
            return
        try:
            self._form.feed(chunk)
        except Exception as exc:  # answered by post(), once the client sent its body
            self._form_error = exc

    @web.authenticated
    @authorized
    async def post(self) -> None:
        assert self._form is not None
        if self._form_error is not None:
            raise self._form_error
        name, body = await original.predict_image(self.service, self._form.finish(),
                                                   self._grant, self.stages)
        self._model_name, self._rows = name, 1
        self.finish(body)
