"""GET metrics: Prometheus text exposition format 0.0.4 (behind Jupyter's auth)."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server.metrics import CONTENT_TYPE, collect

from .base import TFaaSHandler


class MetricsHandler(TFaaSHandler):
    endpoint = "metrics"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        text = await collect(self.service)
        self.finish(text.encode("utf-8"), set_content_type=CONTENT_TYPE)
