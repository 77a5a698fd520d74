"""The base of every tfaas handler: authentication (Jupyter's, or a TFaaS key), errors
as ``{"error": ...}``, stats."""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Awaitable
from typing import Any, ClassVar, cast

from jupyter_server.auth import User
from jupyter_server.auth import decorator as _auth_decorators
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.web import RequestHandler

from tfaas_jupyter.server import keys
from tfaas_jupyter.server.catalogue import Catalogue
from tfaas_jupyter.server.codecs import encode_json
from tfaas_jupyter.server.errors import BadRequest, NotFound, TFaaSError
from tfaas_jupyter.server.service import TFaaS
from tfaas_jupyter.server.timing import Stages
from tfaas_jupyter.server.uploads import Uploads

#: The resource name Jupyter authorizers see for every tfaas endpoint.
AUTH_RESOURCE = "tfaas"
#: The key segment of a key-bearing URL, ``{base_url}tfaas/key/<KEY>/...``.
KEY_URL_SEGMENT = re.compile(r"/tfaas/key/([^/?#]*)")
#: What replaces the key in the request's path, so logs and messages never hold it.
KEY_URL_SCRUBBED = "/tfaas/key/[secret]"
#: ``key_scope`` of a handler any valid key may reach (the unknown-endpoint 404).
ANY_SCOPE = "*"
_AUTH_SCHEMES = ("token", "bearer")


def scope_allows(scope: str | None, grant: keys.Grant | None) -> bool:
    """Whether a key with ``grant`` may call a handler whose ``key_scope`` is ``scope``."""
    if grant is None or scope is None:
        return False
    return scope == ANY_SCOPE or scope in grant.scopes


class KeyAuthorizer:
    """Jupyter's ``Authorizer.is_authorized`` for key-authenticated requests (what
    ``@authorized`` asks): the handler's ``key_scope`` must be one of the key's scopes."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return scope_allows(getattr(handler, "key_scope", None), getattr(handler, "_grant", None))


_KEY_AUTHORIZER = KeyAuthorizer()

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

    # a CORS preflight carries no credentials (the decorator is untyped in jupyter_server)
    @allow_unauthenticated  # type: ignore[untyped-decorator]
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


class KeyCredentialMixin:
    """Finds the TFaaS key a request presents (:meth:`_presented_key`), and takes a key
    in the URL out of the request's path and URI at once: Jupyter's request log,
    Tornado's error log and our messages only ever see "[secret]"."""

    _url_key: str | None = None

    def initialize(self: Any, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)  # type: ignore[misc]
        self._url_key = None
        match = KEY_URL_SEGMENT.search(self.request.path)
        if match:
            self._url_key = match.group(1)
            self.request.path = KEY_URL_SEGMENT.sub(KEY_URL_SCRUBBED, self.request.path, 1)
            self.request.uri = KEY_URL_SEGMENT.sub(KEY_URL_SCRUBBED, self.request.uri, 1)

    def _presented_key(self: Any) -> str | None:
        """The TFaaS key this request presents, if any (URL first, then the header)."""
        if self._url_key is not None:
            url_key: str = self._url_key
            return url_key
        scheme, _, credential = self.request.headers.get("Authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() in _AUTH_SCHEMES and keys.looks_like_key(credential):
            return str(credential)
        # ?token=tfk_... is a key too: Jupyter's identity provider never sees a key
        query_token = self.get_query_argument("token", "")
        return query_token if keys.looks_like_key(query_token) else None


class LoginOnlyPageMixin(KeyCredentialMixin, JupyterHandler):
    """A page for a Jupyter login only (the tfaas/ page, the graph view): a request
    presenting a TFaaS key gets 403, whatever the key's scopes, as the key's other
    refused routes do (not Jupyter's redirect to its login page)."""

    async def prepare(  # type: ignore[override]  # as JupyterHandler.prepare
        self, *, _redirect_to_login: bool = True
    ) -> Awaitable[None] | None:
        if self._presented_key() is not None:
            # answered here, as JSON like every refusal under tfaas/ (a page's own error
            # page would be HTML, or nothing); finishing in prepare() ends the request
            self.set_status(403)
            self.set_header("Content-Type", "application/json")
            self.finish({"error": "a TFaaS key cannot open this page: it is for a "
                                  "Jupyter login only"})
            return None
        return await super().prepare(_redirect_to_login=_redirect_to_login)


class TFaaSHandler(KeyCredentialMixin, MethodsMixin, ExtensionHandlerMixin, APIHandler):
    """An API handler whose errors are the original TFaaS's JSON ``{"error": "..."}``.

    Every request must be authenticated, whatever ``allow_unauthenticated_access``
    says: without a token or a login cookie it gets 403 and nothing else.

    A TFaaS key (``Authorization: Bearer tfk_...`` or ``token tfk_...``, or the
    ``tfaas/key/<KEY>/`` URL) is checked here and never handed to Jupyter's identity
    provider; it reaches only handlers whose ``key_scope`` is one of its scopes.
    """

    auth_resource = AUTH_RESOURCE
    endpoint = "other"
    #: The key scope that may call this handler (``keys.PREDICT``, ``keys.MANAGE``), or
    #: None: Jupyter authentication only. Prediction handlers declare ``keys.PREDICT``.
    key_scope: ClassVar[str | None] = None

    @property
    def service(self) -> TFaaS:
        """The prediction core, which every protocol adapter calls."""
        return cast("TFaaS", self.settings["tfaas_service"])

    @property
    def catalogue(self) -> Catalogue:
        """Models, params, the default model, deletion and status."""
        return cast("Catalogue", self.settings["tfaas_catalogue"])

    @property
    def uploads(self) -> Uploads:
        """The upload service."""
        return cast("Uploads", self.settings["tfaas_uploads"])

    @property
    def key_store(self) -> keys.KeyStore:
        return cast("keys.KeyStore", self.settings["tfaas_keys"])

    @property
    def authorizer(self) -> Any:
        if getattr(self, "_grant", None) is not None:
            return _KEY_AUTHORIZER
        return super().authorizer

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        #: The grant of the key this request authenticated with (None: a Jupyter login),
        #: handed to every service call that checks a model against it.
        self._grant: keys.Grant | None = None
        #: Where this request's time went (its ``Server-Timing``), filled in by the calls
        #: it is handed to.
        self.stages: Stages | None = None

    async def prepare(self) -> None:  # type: ignore[override]  # as APIHandler.prepare
        self._started = time.perf_counter()
        self._model_name: str | None = None
        self._rows = 0
        self.path_kwargs.pop("tfaas_key", None)
        key = self._presented_key()
        if key is not None:
            self._authenticate_key(key)
        else:
            await super().prepare()
            # A CORS preflight carries no credentials by design: Jupyter's own options()
            # answers it (no content, no data), exactly as for Jupyter's REST API.
            if self.current_user is None and self.request.method != "OPTIONS":
                raise web.HTTPError(403, "authentication required")
        grant = self._grant
        self.stages = Stages(time.perf_counter(), f"key:{grant.name}" if grant is not None
                             else getattr(self.current_user, "username", None))

    def _authenticate_key(self, key: str) -> None:
        """Authenticate with a TFaaS key, or refuse (403), without Jupyter's auth."""
        self.current_user = self._jupyter_current_user = None
        if not self.check_host():
            raise web.HTTPError(403)
        grant = self.key_store.verify(key)
        if grant is None:
            raise web.HTTPError(403, "invalid or revoked TFaaS key")
        if not scope_allows(self.key_scope, grant):
            scopes = ", ".join(sorted(grant.scopes))
            raise web.HTTPError(
                403, f"TFaaS key {grant.name!r} (scopes: {scopes}) cannot call this endpoint"
            )
        self._grant = grant
        # Explicit credentials, like a token: no XSRF cookie, no origin check.
        self._token_authenticated = True
        self.current_user = self._jupyter_current_user = User(username=f"tfaas-key:{grant.name}")

    def set_secure_cookie(self, name: str, value: str | bytes,
                          expires_days: float | None = 30, version: int | None = None,
                          **kwargs: Any) -> None:
        """Jupyter's login cookie is not set on the prediction API's answers.

        Jupyter's identity provider sets it on every answer to a request that
        authenticated with a token and brought no login cookie, so that a browser
        opening a ``?token=`` link stays logged in. The prediction routes answer
        programs (the original's clients, curl, grid jobs), which send their token
        with every request and never keep cookies: for them it is a signed value
        computed and about 200 bytes sent per answer for nothing. The token is
        still checked on every request, as before; pages and the other routes keep
        Jupyter's behaviour.
        """
        if self.key_scope == keys.PREDICT and name == self.identity_provider.get_cookie_name(self):
            return
        super().set_secure_cookie(name, value, expires_days, version, **kwargs)

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
        stages = getattr(self, "stages", None)
        if stages is not None and not self._headers_written:
            for timing in stages.server_timing(time.perf_counter()):
                self.add_header("Server-Timing", timing)
        return super().finish(chunk, **kwargs)

    def json_object(self, shape: str) -> dict[str, Any]:
        """The request's body as a JSON object (an empty body is ``{}``), or a 400
        saying the ``shape`` expected."""
        try:
            doc = json.loads(self.request.body or b"{}")
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise BadRequest(f"expected a JSON object {shape}")
        return doc

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
            cold=getattr(getattr(self, "stages", None), "cold_start", None) is not None,
        )


class UnknownEndpointHandler(TFaaSHandler):
    """A path under tfaas/ that is no endpoint (a typo, a version that is not a number)."""

    key_scope = ANY_SCOPE

    @web.authenticated
    async def _unknown(self, *args: str) -> None:
        raise NotFound(
            f"no such TFaaS endpoint: {self.request.method} {self.request.path} "
            "(the endpoints are listed by tfaas/openapi.json)"
        )

    get = post = put = patch = delete = head = _unknown
