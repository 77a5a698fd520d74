"""The graph view: Netron's viewer page and files, and each model version's graph file.

``graph/?model=NAME[&version=N]`` shows a served model, ``graph/?path=PATH`` a model
file (or SavedModel folder) of the server's contents before any upload; the viewer's
own files are served beside the page (``graph/index.js``, ...) from the installed
``netron`` package, and ``models/NAME[/versions/N]/file`` answers the model's file.
"""

from __future__ import annotations

import posixpath
from urllib.parse import urlencode

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import ensure_async, url_escape, url_path_join
from tornado import web

from tfaas_jupyter.server import keys
from tfaas_jupyter.server.errors import BadRequest, NotFound, TFaaSError
from tfaas_jupyter.server.graphview import (
    CONSENT_COOKIE,
    CONTENT_SECURITY_POLICY,
    GRAPH_FILE_ENDINGS,
    model_file,
    viewer_asset,
    viewer_page,
)
from tfaas_jupyter.server.labtheme import LabTheme, known, lab_app, theme_links, user_theme
from tfaas_jupyter.server.names import check_model_name, check_version

from .base import (
    AUTH_RESOURCE,
    LoginOnlyPageMixin,
    MethodsMixin,
    TFaaSHandler,
    allow_unauthenticated,
)

_CHUNK = 1 << 20


class _ViewerHandler(MethodsMixin, ExtensionHandlerMixin, JupyterHandler):
    """A page or file of the viewer: a browser without a login goes to the login page;
    a missing viewer or model is a JSON error, as everywhere under tfaas/."""

    auth_resource = AUTH_RESOURCE

    @property
    def content_security_policy(self) -> str:
        # framed by Lab (same origin), reaching nothing but this server
        return f"{CONTENT_SECURITY_POLICY}; frame-ancestors 'self'"

    def write_error(self, status_code: int, **kwargs: object) -> None:
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if isinstance(exc_info, tuple) else None
        if status_code == 405:
            self.set_allow_header()
        message = error.message if isinstance(error, TFaaSError) else self._reason
        self.set_header("Content-Type", "application/json")
        self.finish({"error": message})

    def theme_links(self, page: str) -> str:
        """The Lab theme's stylesheets for ``page`` (``graph``, ``explorer``): the theme
        the ``theme`` query names (Lab's tab passes its own), else the user's Lab
        setting's; none without JupyterLab."""
        app = lab_app(self.serverapp)
        if app is None:
            return ""
        requested = known(self.get_query_argument("theme", None))
        theme = LabTheme(requested) if requested else user_theme(app)
        return theme_links(self.base_url, app.themes_url, theme, page)

    def _send(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish({"error": message})


class GraphPageHandler(LoginOnlyPageMixin, _ViewerHandler):
    """The viewer page, naming the model file it opens."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            file_url, identifier = await self._model_file_url()
            page = viewer_page(file_url, identifier, self.theme_links("graph"))
        except TFaaSError as exc:
            self._send(exc.status, exc.message)
            return
        # Netron asks an outside service before its cookie notice unless this is set
        self.set_cookie(CONSENT_COOKIE, "tfaas-jupyter",
                        path=url_path_join(self.base_url, "tfaas", "graph/"))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(page)

    async def _model_file_url(self) -> tuple[str | None, str | None]:
        """The model file's URL relative to the page (Netron resolves it against the
        page's folder, ``{base_url}tfaas/graph/``), and its file name."""
        name = self.get_query_argument("model", None)
        path = self.get_query_argument("path", None)
        if name is not None and path:
            raise BadRequest("give either 'model' or 'path', not both")
        if name is not None:
            name = check_model_name(name)
            service = self.settings["tfaas_service"]
            mv = service.resolve(name, check_version(self.get_query_argument("version", None)))
            _, identifier = model_file(mv)
            return (f"../models/{url_escape(mv.name)}/versions/{mv.version}/file"
                    f"{self._xsrf_query()}", identifier)
        if path:
            return await self._contents_file(path)
        return None, None

    async def _contents_file(self, path: str) -> tuple[str, str]:
        """A model file or SavedModel folder of the contents, by Jupyter's own ``files/``
        route (which applies the contents manager's checks again when it is fetched)."""
        path = path.strip("/")
        manager = self.contents_manager
        try:
            model = await ensure_async(
                manager.get(path, content=False))  # type: ignore[no-untyped-call]
        except web.HTTPError as exc:
            raise NotFound(f"no file {path!r} in the server's contents") from exc
        if model["type"] == "directory":
            inner = posixpath.join(path, "saved_model.pb")
            if not await ensure_async(
                    manager.file_exists(inner)):  # type: ignore[no-untyped-call]
                raise NotFound(f"{path!r} is a folder without saved_model.pb")
            path = inner
        elif not path.lower().endswith(GRAPH_FILE_ENDINGS):
            raise BadRequest(
                f"{path!r} is not a model file ({', '.join(GRAPH_FILE_ENDINGS)})")
        name = posixpath.basename(path)
        # Netron opens only URLs ending like a model file: the name again, last
        query = f"{self._xsrf_query()}&{urlencode({'name': name})}"
        return f"../../files/{url_escape(path)}{query}", name

    def _xsrf_query(self) -> str:
        """``?_xsrf=...``: Netron fetches the model with XMLHttpRequest, which JupyterHub
        accepts with a login cookie only together with the XSRF token."""
        token = self.xsrf_token
        return "?" + urlencode({"_xsrf": token.decode() if isinstance(token, bytes) else token})


class GraphAssetHandler(_ViewerHandler):
    """One file of the viewer, from the installed package: public files, like Lab's
    own static files (the viewer's scripts import each other with fetches that
    JupyterHub does not authenticate by cookie); the page and the model need a login."""

    @allow_unauthenticated  # type: ignore[untyped-decorator]  # untyped in jupyter_server
    async def get(self, asset: str) -> None:
        try:
            path, kind = viewer_asset(asset)
        except TFaaSError as exc:
            self._send(exc.status, exc.message)
            return
        self.set_header("Content-Type", kind)
        self.set_header("Cache-Control", "private, max-age=3600")
        self.finish(path.read_bytes())

    @allow_unauthenticated  # type: ignore[untyped-decorator]  # untyped in jupyter_server
    async def head(self, asset: str) -> None:  # public as GET is (headers only)
        await self.get(asset)


class ModelFileHandler(TFaaSHandler):
    """A model version's graph file (``saved_model.pb``, the ``.keras``, the ``.pb``, the
    ``.onnx``), as uploaded: what the graph view opens, and a download."""

    endpoint = "models"
    key_scope = keys.MANAGE

    @web.authenticated
    @authorized
    async def get(self, name: str, version: str | None = None) -> None:
        self._model_name = name
        mv = self.service.resolve(name, check_version(version))
        path, filename = model_file(mv)
        if not path.is_file():
            raise NotFound(f"model {name!r} version {mv.version} has no file {filename!r}")
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.set_header("Content-Length", str(path.stat().st_size))
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish()
