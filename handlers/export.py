"""``GET export[?model=NAME[&version=V]]``: the models as TF Serving and KServe load
them (.tar.gz)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server import keys
from tfaas_jupyter.server.export import export_archive
from tfaas_jupyter.server.names import check_model_name, check_version_or_label

from .base import TFaaSHandler

_CHUNK = 1024 * 1024


class ExportHandler(TFaaSHandler):
    """Every version of every model (or of ``model``) as SavedModels, with models.config
    and KServe manifests; written in a private folder of the repository, then streamed."""

    endpoint = "export"
    key_scope = keys.MANAGE

    @web.authenticated
    @authorized
    async def get(self) -> None:
        model = self.get_query_argument("model", None)
        if model is not None:  # ?model= names one model; empty is no name at all
            model = check_model_name(model)
        self._model_name = model
        version = check_version_or_label(self.get_query_argument("version", None) or None)
        repository = self.service.repository
        made: Path = await asyncio.to_thread(repository.new_staging_dir)
        staging: Path | None = made  # None once removed
        try:
            archive = await export_archive(self.service, model, made, self._grant, version)
            self.set_header("Content-Type", "application/gzip")
            name = f"tfaas-export-{model}.tar.gz" if model else "tfaas-export.tar.gz"
            self.set_header("Content-Disposition", f'attachment; filename="{name}"')
            size = archive.stat().st_size
            self.set_header("Content-Length", str(size))
            sent, last = 0, b""
            with open(archive, "rb") as fh:
                while chunk := await asyncio.to_thread(fh.read, _CHUNK):
                    sent += len(chunk)
                    if sent >= size:
                        last = chunk
                        break
                    self.write(chunk)
                    await self.flush()
            # removed before the last bytes go out: a client that has the whole archive
            # (its Content-Length) finds nothing left behind
            staging = None
            await asyncio.to_thread(repository.discard, made)
            self.finish(last, set_content_type="application/gzip")
        finally:
            if staging is not None:
                await asyncio.to_thread(repository.discard, staging)
