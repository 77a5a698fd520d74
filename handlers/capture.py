"""GET capture/NAME: the captured predictions of a model, as one Parquet file."""

from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server import keys
from tfaas_jupyter.server.capture import read_capture
from tfaas_jupyter.server.errors import NotFound
from tfaas_jupyter.server.keys import check_model_access
from tfaas_jupyter.server.names import check_model_name

from .base import TFaaSHandler


class CaptureHandler(TFaaSHandler):
    """What ``%tfaas capture NAME`` reads back (``TFaaSApp.capture_dir``)."""

    endpoint = "capture"
    key_scope = keys.MANAGE

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        name = check_model_name(name)
        check_model_access(self._grant, name)
        self._model_name = name
        capture = self.service.capture
        if capture is None:
            raise NotFound("capture is off (TFaaSApp.capture_dir is not set)")
        await asyncio.to_thread(capture.flush)
        data = await asyncio.to_thread(read_capture, capture.folder, name)
        self.set_header("Content-Type", "application/vnd.apache.parquet")
        self.set_header("Content-Disposition", f'attachment; filename="{name}-capture.parquet"')
        self.finish(data)
