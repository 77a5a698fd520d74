"""The API explorer page: ``explorer/`` on the whole API's description,
``explorer/?model=NAME[&version=N]`` on one model's; what the ``tfaas/`` page and the
notebook widget link to (Lab's panel opens the same Swagger UI in a tab of its own)."""

from __future__ import annotations

import secrets

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_escape
from tornado import web

from tfaas_jupyter.server.errors import TFaaSError
from tfaas_jupyter.server.explorerpage import content_security_policy, explorer_page
from tfaas_jupyter.server.names import check_model_name, check_version

from .base import LoginOnlyPageMixin
from .graph import _ViewerHandler


class ExplorerPageHandler(LoginOnlyPageMixin, _ViewerHandler):
    """Swagger UI on a description of this server, behind the Jupyter login (a TFaaS key
    is refused: 403)."""

    _nonce = ""

    @property
    def nonce(self) -> str:
        """This response's nonce, for the page's one inline script."""
        if not self._nonce:
            self._nonce = secrets.token_urlsafe(16)
        return self._nonce

    @property
    def content_security_policy(self) -> str:
        return content_security_policy(self.nonce)

    @web.authenticated
    @authorized
    async def get(self) -> None:
        name = self.get_query_argument("model", None)
        try:
            if name is None:
                description, title = "../openapi.json", "TFaaS API"
            else:
                name = check_model_name(name)
                version = check_version(self.get_query_argument("version", None))
                mv = self.settings["tfaas_service"].resolve(name, version)
                description = (f"../models/{url_escape(mv.name)}/versions/{mv.version}"
                               "/openapi.json")
                title = f"TFaaS API: {mv.name} version {mv.version}"
        except TFaaSError as exc:
            self._send(exc.status, exc.message)
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(explorer_page(self.base_url, description, title, self.nonce,
                                  self.theme_links("explorer")))
