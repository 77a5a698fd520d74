"""The base of every tfaas handler: authentication, errors as ``{"error": ...}``, stats."""

from __future__ import annotations

import time
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from tfaas_jupyter.server.codecs import encode_json
from tfaas_jupyter.server.errors import NotFound, TFaaSError
from tfaas_jupyter.server.service import TFaaS
from tfaas_jupyter.server.supervisor import COLD_START

#: The resource name Jupyter authorizers see for every tfaas endpoint.
AUTH_RESOURCE = "tfaas"


class TFaaSHandler(ExtensionHandlerMixin, APIHandler):
    """An API handler whose errors are the original TFaaS's JSON ``{"error": "..."}``.

    Every request must be authenticated, whatever ``allow_unauthenticated_access``
    says: without a token or a login cookie it gets 403 and nothing else.
    """

    auth_resource = AUTH_RESOURCE
    endpoint = "other"

    @property
    def service(self) -> TFaaS:
        return self.settings["tfaas_service"]

    async def prepare(self) -> None:
        self._started = time.perf_counter()
        COLD_START.set(None)
        self._model_name: str | None = None
        self._rows = 0
        await super().prepare()
        # A CORS preflight carries no credentials by design: Jupyter's own options()
        # answers it (no content, no data), exactly as for Jupyter's REST API.
        if self.current_user is None and self.request.method != "OPTIONS":
            raise web.HTTPError(403, "authentication required")

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, TFaaSError):
            if self._finished:
                return
            self._model_name = e.model or getattr(self, "_model_name", None)
            self.log.info("tfaas %s %s: %s (%s)", self.request.method, self.request.path,
                          e.message, e.status)
            self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, TFaaSError):
            message = exc.message
        elif isinstance(exc, web.HTTPError):
            message = exc.log_message or exc.reason or self._reason
            if exc.log_message and exc.args:
                message = exc.log_message % exc.args
        elif exc is not None:
            message = f"internal error ({type(exc).__name__}); see the server log"
        else:
            message = self._reason
        self.set_header("Content-Type", "application/json")
        if status_code == 503:  # busy, or the model worker is restarting
            self.set_header("Retry-After", "1")
        self.finish(self.service_error_body(message, status_code))

    @staticmethod
    def service_error_body(message: str, status_code: int) -> bytes:
        # "message" too, so Jupyter's front-end helpers show it.
        return encode_json({"error": message, "message": message, "status": status_code}) + b"\n"

    def finish(self, chunk: Any = None, **kwargs: Any) -> Any:
        """Finish, telling the client in ``Server-Timing`` when this request waited for a
        cold start (the worker's start and its model's load)."""
        cold = COLD_START.get()
        if cold is not None and not self._headers_written:
            self.add_header("Server-Timing", cold.server_timing())
        return super().finish(chunk, **kwargs)

    def write_json(self, doc: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(encode_json(doc))

    def on_finish(self) -> None:
        started = getattr(self, "_started", None)
        settings_service = self.settings.get("tfaas_service")
        if started is None or settings_service is None:
            return
        settings_service.stats.record(
            self.request.method or "", self.endpoint, self.get_status(),
            time.perf_counter() - started, self._model_name, self._rows,
        )


class UnknownEndpointHandler(TFaaSHandler):
    """A path under tfaas/ that is no endpoint (a typo, a version that is not a number)."""

    @web.authenticated
    async def _unknown(self, *args: str) -> None:
        raise NotFound(
            f"no such TFaaS endpoint: {self.request.method} {self.request.path} "
            "(the endpoints are listed by tfaas/openapi.json)"
        )

    get = post = put = patch = delete = head = _unknown
