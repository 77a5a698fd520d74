"""POST upload: the original's multipart form (with its base64 model), a single
archive in the form, or a tarball bundle as the whole body.

The body is streamed to a file in the repository's staging area as it arrives,
never held in memory; a declared size over the limit gets 413 before any of it
is read.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server import keys
from tfaas_jupyter.server.errors import BadRequest, PayloadTooLarge
from tfaas_jupyter.server.multipart import parse_multipart

from .base import TFaaSHandler


@web.stream_request_body
class UploadHandler(TFaaSHandler):
    endpoint = "upload"
    key_scope = keys.MANAGE

    async def prepare(self) -> None:
        self._staging: Path | None = None
        self._body = None
        self._received = 0
        self._too_large = False
        await super().prepare()
        if self.request.method != "POST":
            return
        limit = self.service.limits.max_upload_size
        declared = self.request.headers.get("Content-Length")
        if declared is not None:
            try:
                declared_size = int(declared)
            except ValueError:
                raise BadRequest("invalid Content-Length header") from None
            if declared_size > limit:
                raise PayloadTooLarge(
                    f"upload of {declared_size} bytes exceeds the limit of {limit} bytes"
                )
        # Let Tornado accept up to our own limit (the server's default may be lower).
        self.request.connection.set_max_body_size(limit + 1024 * 1024)
        self._staging = self.service.repository.new_staging_dir()
        self._body = open(self._staging / "request.body", "wb")  # noqa: SIM115

    def data_received(self, chunk: bytes) -> None:
        if self._body is None or self._too_large:
            return
        self._received += len(chunk)
        if self._received > self.service.limits.max_upload_size:
            self._too_large = True
            self._body.close()
            self._body = None
            return
        self._body.write(chunk)

    @web.authenticated
    @authorized
    async def post(self) -> None:
        assert self._staging is not None
        if self._body is not None:
            self._body.close()
            self._body = None
        if self._too_large:
            raise PayloadTooLarge(
                f"upload exceeds the limit of {self.service.limits.max_upload_size} bytes"
            )
        if self._received == 0:
            raise BadRequest(
                "empty upload: send a multipart form (name, model, params, labels) "
                "or a tarball bundle"
            )
        body = self._staging / "request.body"
        content_type = self.request.headers.get("Content-Type", "")
        encoding = self.request.headers.get("Content-Encoding", "").lower()
        if "form-data" in content_type:
            form = await asyncio.to_thread(parse_multipart, body, content_type, self._staging)
            await asyncio.to_thread(body.unlink)
            answer = await self.service.upload_form(
                form, self._staging, base64_model="base64" in encoding
            )
        else:
            answer = await self.service.upload_bundle(body, self._staging)
        self._model_name = answer["name"]
        self.write_json(answer)

    def on_finish(self) -> None:
        self._cleanup()
        super().on_finish()

    def on_connection_close(self) -> None:
        self._cleanup()
        super().on_connection_close()

    def _cleanup(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
        if self._staging is not None:
            # After a commit the folder was renamed into place: nothing is left here.
            self.service.repository.discard(self._staging)
            self._staging = None
