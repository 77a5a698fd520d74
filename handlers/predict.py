"""POST json, proto and image: predictions."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server import keys
from tfaas_jupyter.server.errors import BadRequest
from tfaas_jupyter.server.multipart import FilePart, Form
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


def form_from_request(handler: TFaaSHandler) -> Form:
    """The request's form as parsed by Tornado (small bodies held in memory)."""
    form = Form()
    for key, values in handler.request.body_arguments.items():
        if values:
            form.fields[key] = values[0].decode("utf-8", errors="replace")
    for key, files in handler.request.files.items():
        if files:
            part = files[0]
            form.files[key] = FilePart(
                filename=part.get("filename") or "", path=None,
                content_type=part.get("content_type"), data=part.get("body") or b"",
            )
    return form


class ImageHandler(TFaaSHandler):
    """Multipart ``image`` (png or jpg) and ``model``: the top labels, as the original."""

    endpoint = "image"
    key_scope = keys.PREDICT

    @web.authenticated
    @authorized
    async def post(self) -> None:
        if "form-data" not in self.request.headers.get("Content-Type", ""):
            raise BadRequest("expected a multipart/form-data body with 'image' and 'model'")
        name, body = await original.predict_image(self.service, form_from_request(self),
                                                   self._grant, self.stages)
        self._model_name, self._rows = name, 1
        self.finish(body)
