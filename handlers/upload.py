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
from tfaas_jupyter.server.diskspace import disk_full_error, is_disk_full
from tfaas_jupyter.server.errors import BadRequest, PayloadTooLarge
from tfaas_jupyter.server.modelfiles import tree_size
from tfaas_jupyter.server.multipart import Form, FormStream, boundary_of
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
    _disk_full = False
    _full_while_unpacking = False
    _post_owns_staging = False

    async def prepare(self) -> None:  # type: ignore[override]  # as APIHandler.prepare
        self._staging: Path | None = None
        #: Set once post() runs: from then on post() alone removes the staging folder.
        self._post_owns_staging = False
        self._body: PartWriter | None = None
        self._form = None
        self._form_error = None
        self._received = 0
        self._too_large = False
        #: The disk filled while the body arrived: the rest is read and dropped, and
        #: post() answers 507 (the connection is never reset).
        self._disk_full = False
        self._full_while_unpacking = False
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
        # (Jupyter serves HTTP/1: its connection has set_max_body_size)
        self.request.connection.set_max_body_size(  # type: ignore[union-attr]
            limit + 1024 * 1024)
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
        if self._too_large or self._disk_full or (self._body is None and self._form is None):
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
        except OSError as exc:
            self._stop_writing(exc)
            return
        except Exception as exc:  # answered by post(), once the client sent its body
            self._form_error = exc
            self._give_up()
            return
        if sink.backlog() > BACKLOG:  # an archive unpacked slower than it arrives
            await asyncio.to_thread(sink.wait_for_room)

    def _stop_writing(self, exc: OSError) -> None:
        """A write of the body failed: a full disk is answered 507 by post(), once the
        client has sent its body; anything else is the error post() raises."""
        if is_disk_full(exc):
            self._disk_full = True
            sink = self._body if self._body is not None else self._form
            self._full_while_unpacking = sink is not None and sink.unpacking
        elif self._form_error is None:
            self._form_error = exc
        self._give_up()

    def _disk_full_error(self, staging: Path) -> Exception:
        """The 507 of a body that did not fit (a blocking call): it needs its whole length
        (its Content-Length, else at least what arrived), or, when the disk filled while
        an archive in it was unpacked, more than that unpacking had written; what it
        wrote is being removed."""
        self._stop_and_wait()
        if self._full_while_unpacking:
            return self.uploads.unpacking_disk_full(staging)
        declared = self.request.headers.get("Content-Length", "")
        needed = int(declared) if declared.isdigit() else self._received
        return disk_full_error(self.service.repository.root, "store the upload",
                               needed=needed, freed=tree_size(staging),
                               at_least=not declared.isdigit())

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
        if self._disk_full:
            raise await asyncio.to_thread(self._disk_full_error, self._staging)
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
        form = self._finish_body()
        if self._disk_full:
            raise await asyncio.to_thread(self._disk_full_error, self._staging)
        if form is not None:
            answer = await self.uploads.upload_form(form, self._staging, grant=self._grant,
                                                    stages=self.stages)
        else:
            assert self._body is not None
            answer = await self.uploads.upload_bundle(self._body, self._staging,
                                                      grant=self._grant, stages=self.stages)
        self._model_name = answer["name"]
        self.write_json(answer)

    def _finish_body(self) -> Form | None:
        """The body ended: its form (None for a bundle), its files closed; a full disk
        may show only now, as the last bytes are flushed."""
        try:
            if self._form is not None:
                return self._form.finish()
            assert self._body is not None
            self._body.close()
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self._stop_writing(exc)
        return None

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
        self._stop_and_wait()
        self.service.repository.discard(staging)

    def _stop_and_wait(self) -> None:
        """Stop writing the body and wait until nothing writes into its staging folder
        any more (a blocking call)."""
        self._give_up()
        if self._body is not None:
            self._body.wait_stopped()
        if self._form is not None:
            self._form.wait_stopped()

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
