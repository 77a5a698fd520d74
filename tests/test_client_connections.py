"""A client dropped without ``close()`` (as a notebook cell drops one) closes its
kept-alive connections when it is collected: no socket is left open to the server."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from tfaas_jupyter.client.api import TFaaSClient


async def test_a_dropped_client_closes_its_connections(
        jp_fetch: Any, jp_http_port: int, jp_base_url: str, jp_serverapp: Any) -> None:
    await jp_fetch("tfaas", "status")  # the server is up
    token = jp_serverapp.identity_provider.token
    client = TFaaSClient(f"http://localhost:{jp_http_port}{jp_base_url}tfaas/", token=token)
    assert await asyncio.to_thread(client.models) == []
    kept = list(client._idle)
    assert kept and all(conn.sock is not None for conn in kept)  # kept alive
    del client
    gc.collect()
    assert all(conn.sock is None for conn in kept)  # closed, not left to the collector


async def test_close_closes_them_too(
        jp_fetch: Any, jp_http_port: int, jp_base_url: str, jp_serverapp: Any) -> None:
    await jp_fetch("tfaas", "status")
    token = jp_serverapp.identity_provider.token
    with TFaaSClient(f"http://localhost:{jp_http_port}{jp_base_url}tfaas/",
                     token=token) as client:
        await asyncio.to_thread(client.models)
        kept = list(client._idle)
    assert kept and all(conn.sock is None for conn in kept)
