"""keys: the owner creates, lists and revokes TFaaS keys (Jupyter authentication only;
no key can reach these routes, whatever its scopes)."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from .base import TFaaSHandler


class KeysHandler(TFaaSHandler):
    """GET: every key's metadata (never a secret). POST ``{"name", "models"?, "scopes"?}``:
    a new key, answered once with its ``key`` and key-bearing ``url``."""

    endpoint = "keys"
    key_scope = None

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(self.key_store.list())

    @web.authenticated
    @authorized
    async def post(self) -> None:
        doc = self.json_object('{"name": ..., "models"?: [...], '
                               '"scopes"?: ["predict", "manage"]}')
        key, record = self.key_store.create(doc.get("name"), doc.get("models"), doc.get("scopes"))
        url = f"{self.request.protocol}://{self.request.host}" + url_path_join(
            self.base_url, "tfaas", "key", key
        ) + "/"
        self.set_header("Cache-Control", "no-store")
        self.write_json({**record, "key": key, "url": url})


class KeyHandler(TFaaSHandler):
    """GET one key's metadata; DELETE revokes it at once."""

    endpoint = "keys"
    key_scope = None

    @web.authenticated
    @authorized
    async def get(self, key_name: str) -> None:
        self.write_json(self.key_store.get(key_name))

    @web.authenticated
    @authorized
    async def delete(self, key_name: str) -> None:
        self.write_json({"revoked": self.key_store.revoke(key_name)})
