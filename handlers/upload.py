"""POST upload: the original's multipart form (with its base64 model), a single
archive in the form, or a tarball bundle as the whole body.

The body is parsed as it arrives, never held in memory: a form's parts are written
once each, to their files in the repository's staging area (the model decoded from
base64 on the way, a tar or tar.gz model unpacked there as it arrives), and a bundle
unpacked there the same way (:mod:`~tfaas_jupyter.server.unpack`). A declared size
over the limit gets 413 before any of it is read.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server import keys
from tfaas_jupyter.server.contents_upload import contents_form, contents_path
from tfaas_jupyter.server.errors import BadRequest, PayloadTooLarge
from tfaas_jupyter.server.multipart import FormStream, boundary_of
from tfaas_jupyter.server.unpack import BACKLOG, PartWriter

from .base import TFaaSHandler


@web.stream_request_body
class UploadHandler(TFaaSHandler):
    endpoint = "upload"
    key_scope = keys.MANAGE
    # Defaults for requests that never reach prepare() (a method Tornado refuses first).
    _staging: Path | None = None
    _body: PartWriter | None = None
    _form: FormStream | None = None
    _form_error: Exception | None = None
    _received = 0
    _too_large = False
    _post_owns_staging = False

    async def prepare(self) -> None:
        self._staging: Path | None = None
        #: Set once post() runs: from then on post() alone removes the staging folder.
        self._post_owns_staging = False
        self._body: PartWriter | None = None
        self._form = None
        self._form_error = None
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
        content_type = self.request.headers.get("Content-Type", "")
        if "form-data" in content_type:
            # the original client sends Content-Encoding: base64 and encodes the model part
            encoding = self.request.headers.get("Content-Encoding", "").lower()
            base64 = frozenset({"model"}) if "base64" in encoding else frozenset()
            boundary_of(content_type)  # a form without a boundary: 400 before its body
            self._staging = self.service.repository.new_staging_dir()
            self._form = FormStream(content_type, self._staging, base64=base64,
                                    unpack=frozenset({"model"}),
                                    max_extracted=self.service.limits.max_extracted_size)
        else:
            self._staging = self.service.repository.new_staging_dir()
            self._body = PartWriter(self._staging / "request.body", unpack=True,
                                    max_size=self.service.limits.max_extracted_size)

    async def data_received(self, chunk: bytes) -> None:
        if self._too_large or (self._body is None and self._form is None):
            return
        self._received += len(chunk)
        if self._received > self.service.limits.max_upload_size:
            self._too_large = True
            self._give_up()
            return
        if self._form_error is not None:
            return
        sink = self._body if self._body is not None else self._form
        assert sink is not None
        try:
            if self._body is not None:
                self._body.write(chunk)
            else:
                assert self._form is not None
                self._form.feed(chunk)
        except Exception as exc:  # answered by post(), once the client sent its body
            self._form_error = exc
            self._give_up()
            return
        if sink.backlog() > BACKLOG:  # an archive unpacked slower than it arrives
            await asyncio.to_thread(sink.wait_for_room)

    @web.authenticated
    @authorized
    async def post(self) -> None:
        self._post_owns_staging = True
        try:
            await self._store_upload()
        finally:
            # The one place that removes the staging folder of a complete body: after the
            # commit (which renamed it into place) or the failure, never during either.
            staging, self._staging = self._staging, None
            if staging is not None:
                await asyncio.to_thread(self._discard, staging)

    async def _store_upload(self) -> None:
        if self._staging is None:
            raise BadRequest("the upload was abandoned by the client")
        if self._too_large:
            raise PayloadTooLarge(
                f"upload exceeds the limit of {self.service.limits.max_upload_size} bytes"
            )
        if self._received == 0:
            raise BadRequest(
                "empty upload: send a multipart form (name, model, params, labels) "
                "or a tarball bundle"
            )
        if self._form_error is not None:
            raise self._form_error
        if self._form is not None:
            form = self._form.finish()
            answer = await self.uploads.upload_form(form, self._staging, grant=self._grant,
                                                    stages=self.stages)
        else:
            assert self._body is not None
            self._body.close()
            answer = await self.uploads.upload_bundle(self._body, self._staging,
                                                      grant=self._grant, stages=self.stages)
        self._model_name = answer["name"]
        self.write_json(answer)

    def on_finish(self) -> None:
        self._abandon()
        super().on_finish()

    def on_connection_close(self) -> None:
        # A client gone while post() validates or commits changes nothing: post() finishes
        # the upload and cleans up after itself.
        self._abandon()
        super().on_connection_close()

    def _give_up(self) -> None:
        """Stop writing the body (refused, failed, or the client left): close its file,
        stop its unpacking."""
        if self._body is not None:
            self._body.abort()
        if self._form is not None:
            self._form.abort()

    def _discard(self, staging: Path) -> None:
        """Remove the staging folder once nothing writes into it (a blocking call)."""
        self._give_up()
        if self._body is not None:
            self._body.wait_stopped()
        if self._form is not None:
            self._form.wait_stopped()
        self.service.repository.discard(staging)

    def _abandon(self) -> None:
        """A body that never reached post() (refused, or the client left): remove its
        staging folder in a thread, off the event loop."""
        staging = getattr(self, "_staging", None)
        if staging is None or getattr(self, "_post_owns_staging", True):
            return
        self._staging = None
        asyncio.get_running_loop().run_in_executor(None, self._discard, staging)


class ContentsUploadHandler(TFaaSHandler):
    """POST ``{"path": ..., "name": ...}``: serve a model file or SavedModel folder of
    the server's contents (the file browser's "Serve with TFaaS"), read on the server."""

    endpoint = "upload"
    key_scope = None  # the contents are the Jupyter user's: Jupyter authentication only

    @web.authenticated
    @authorized
    async def post(self) -> None:
        shape = '{"path": "...", "name": "..."}'
        doc = self.json_object(shape)
        if not isinstance(doc.get("path"), str) or not isinstance(doc.get("name"), str):
            raise BadRequest(f"expected a JSON object {shape}")
        manager = self.contents_manager
        source = contents_path(manager.root_dir, doc["path"],
                               allow_hidden=bool(getattr(manager, "allow_hidden", False)))
        service = self.service
        staging = await asyncio.to_thread(service.repository.new_staging_dir)
        try:
            form = await asyncio.to_thread(contents_form, source, doc["name"].strip(),
                                           staging, max_size=service.limits.max_upload_size)
            answer = await self.uploads.upload_form(form, staging, grant=self._grant)
        finally:
            await asyncio.to_thread(service.repository.discard, staging)
        self._model_name = answer["name"]
        self.write_json(answer)
