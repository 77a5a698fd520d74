"""Handlers that each do part of a ``/tfaas/json`` request, for ``benchmarks/run --gap``.

A Jupyter server extension of the benchmark only (never installed with the project):
mounted beside tfaas_jupyter, it serves under ``{base_url}tfaas-gap/``::

    noop          a POST through Jupyter's APIHandler and authentication; it parses the
                  body as JSON and answers a constant
    noop-wait     the same, waiting one turn of the event loop before answering (as a
                  handler waiting for a worker does)
    decode        the extension's own handler class (keys, ``@authorized``,
                  Server-Timing, statistics) with the request decoded and its model
                  looked up; a constant answer
    json-instant  the real ``/tfaas/json`` route, its worker replaced by one that
                  answers 0.5 ms later from this process (the service, shaping,
                  batcher and encoding without the model worker's round trip)

So a wrk run against each says how much of ``/tfaas/json``'s cost per request is
Jupyter's, the extension's handler, the service and the worker round trip.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

PREFIX = "tfaas-gap"


class NoopHandler(APIHandler):
    @web.authenticated
    async def post(self) -> None:
        json.loads(self.request.body)
        self.set_header("Content-Type", "application/json")
        self.finish(b"[0.5]")


class NoopWaitHandler(APIHandler):
    @web.authenticated
    async def post(self) -> None:
        json.loads(self.request.body)
        await asyncio.sleep(0)
        self.set_header("Content-Type", "application/json")
        self.finish(b"[0.5]")


class InstantWorker:
    """Answers a prediction 0.5 ms later with one 0.5 per row (the seed model's shape)."""

    async def predict(self, model: Any, inputs: list[np.ndarray]) -> Any:
        from tfaas_jupyter.server.timing import ModelAnswer

        await asyncio.sleep(0.0005)
        return ModelAnswer([np.full((inputs[0].shape[0], 1), 0.5, np.float32)])


def _handlers(base: str) -> list[tuple[str, type, dict[str, str]]]:
    from tfaas_jupyter.handlers.base import TFaaSHandler
    from tfaas_jupyter.handlers.predict import JsonHandler

    from tfaas_jupyter.server import codecs, keys
    from tfaas_jupyter.server.batching import Batcher
    from tfaas_jupyter.server.service import TFaaS

    instant: list[TFaaS] = []  # made at the first request: the extension may load after us

    class DecodeHandler(TFaaSHandler):
        endpoint = "json"
        key_scope = keys.PREDICT

        @web.authenticated
        @authorized
        async def post(self) -> None:
            request = codecs.decode_json_request(self.request.body)
            self.service.resolve(request.model, request.version)
            self.finish(b"[0.5]")

    class InstantJsonHandler(JsonHandler):
        @property
        def service(self) -> TFaaS:
            if not instant:
                real: TFaaS = self.settings["tfaas_service"]
                instant.append(TFaaS(real.repository, real.worker,
                                     Batcher(InstantWorker()), real.limits))
            return instant[0]

    ext = {"name": "tfaas"}  # the extension's handlers take its name
    return [(url_path_join(base, PREFIX, "decode"), DecodeHandler, ext),
            (url_path_join(base, PREFIX, "json-instant"), InstantJsonHandler, ext)]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "gap_handlers"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [
        (url_path_join(base, PREFIX, "noop"), NoopHandler),
        (url_path_join(base, PREFIX, "noop-wait"), NoopWaitHandler),
        *_handlers(base),
    ])
