"""The base of every tfaas handler: authentication, errors as ``{"error": ...}``, stats."""

from __future__ import annotations

import inspect
import time
from typing import Any

from jupyter_server.auth import decorator as _auth_decorators
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.web import RequestHandler

from tfaas_jupyter.server.codecs import encode_json
from tfaas_jupyter.server.errors import NotFound, TFaaSError
from tfaas_jupyter.server.service import TFaaS
from tfaas_jupyter.server.supervisor import COLD_START
from tfaas_jupyter.server.timing import STAGES, Stages

#: The resource name Jupyter authorizers see for every tfaas endpoint.
AUTH_RESOURCE = "tfaas"

# jupyter_server >= 2.13 checks that every method is authenticated or marked as open.
allow_unauthenticated = getattr(_auth_decorators, "allow_unauthenticated", lambda method: method)

#: The methods a handler may implement, in the order ``Allow`` lists them.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(handler: type[RequestHandler]) -> list[str]:
    """The methods a handler class answers: those it implements (not Tornado's 405
    default), HEAD wherever GET is, and OPTIONS."""
    allowed = {
        m for m in ("GET", "POST", "PUT", "PATCH", "DELETE")
        if getattr(handler, m.lower()) is not getattr(RequestHandler, m.lower())
    }
    if "GET" in allowed:
        allowed.add("HEAD")
    allowed.add("OPTIONS")
    return [m for m in _METHODS if m in allowed]


class MethodsMixin:
    """HEAD, OPTIONS and 405 as RFC 9110 says, for every tfaas route.

    HEAD answers what GET would, headers only (Tornado sends no body for HEAD);
    OPTIONS lists the route's methods in ``Allow`` (and stays Jupyter's CORS
    preflight where the handler has one); a method the route does not serve gets
    405 naming the allowed ones in ``Allow``.
    """

    def set_allow_header(self: Any) -> None:
        self.set_header("Allow", ", ".join(allowed_methods(type(self))))

    @web.authenticated
    async def head(self: Any, *args: Any, **kwargs: Any) -> None:
        answer = self.get(*args, **kwargs)  # None when it redirected to the login page
        if inspect.isawaitable(answer):
            await answer

    @allow_unauthenticated  # a CORS preflight carries no credentials
    def options(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.set_allow_header()
        preflight = super().options  # type: ignore[misc]
        if getattr(preflight, "__func__", None) is not RequestHandler.options:
            return preflight(*args, **kwargs)  # Jupyter's CORS preflight
        self.set_status(204)
        self.finish()
        return None

    def write_error(self: Any, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_allow_header()
        super().write_error(status_code, **kwargs)  # type: ignore[misc]


class TFaaSHandler(MethodsMixin, ExtensionHandlerMixin, APIHandler):
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
        STAGES.set(Stages(time.perf_counter()))

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
        if status_code == 405:
            self.set_allow_header()
        self.set_header("Content-Type", "application/json")
        if status_code == 503:  # busy, or the model worker is restarting
            self.set_header("Retry-After", "1")
        self.finish(self.service_error_body(message, status_code))

    @staticmethod
    def service_error_body(message: str, status_code: int) -> bytes:
        # "message" too, so Jupyter's front-end helpers show it.
        return encode_json({"error": message, "message": message, "status": status_code}) + b"\n"

    def finish(self, chunk: Any = None, **kwargs: Any) -> Any:
        """Finish, telling the client in ``Server-Timing`` where a prediction's time went
        (:mod:`tfaas_jupyter.server.timing`) and when it waited for a cold start (the
        worker's start and its model's load)."""
        if not self._headers_written:
            stages = STAGES.get()
            if stages is not None:
                timing = stages.server_timing(time.perf_counter())
                if timing is not None:
                    self.add_header("Server-Timing", timing)
            cold = COLD_START.get()
            if cold is not None:
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
