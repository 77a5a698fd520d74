"""GET status: the original's figures plus ours (worker, TensorFlow, models, cache)."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import TFaaSHandler


class StatusHandler(TFaaSHandler):
    endpoint = "status"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(await self.catalogue.status())
