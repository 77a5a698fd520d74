"""Triton's system shared memory extension under ``tfaas/v2/systemsharedmemory``.

Registering and unregistering regions, and their status (which names the objects),
are the owner's: the Jupyter token or a key with the ``manage`` scope. Infer requests
that name a registered region are prediction requests (handlers/v2.py).
"""

from __future__ import annotations

from typing import cast

from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server import keys
from tfaas_jupyter.server.shm import SharedMemoryRegions
from tfaas_jupyter.server.tensors import json_object

from .base import TFaaSHandler


class _SharedMemoryHandler(TFaaSHandler):
    endpoint = "v2"
    key_scope = keys.MANAGE

    @property
    def regions(self) -> SharedMemoryRegions:
        return cast("SharedMemoryRegions", self.settings["tfaas_shm"])


class SharedMemoryStatusHandler(_SharedMemoryHandler):
    """``GET v2/systemsharedmemory[/region/NAME]/status``: the registered regions."""

    @web.authenticated
    @authorized
    async def get(self, region: str | None = None) -> None:
        self.write_json(self.regions.status(region))


class SharedMemoryRegisterHandler(_SharedMemoryHandler):
    """``POST v2/systemsharedmemory/region/NAME/register`` with ``key``, ``offset``,
    ``byte_size``."""

    @web.authenticated
    @authorized
    async def post(self, region: str) -> None:
        doc = json_object(self.request.body, "the register request",
                          "'key', 'offset', 'byte_size'")
        self.regions.register(region, doc)
        self.write_json({})


class SharedMemoryUnregisterHandler(_SharedMemoryHandler):
    """``POST v2/systemsharedmemory[/region/NAME]/unregister``: one region, or all."""

    @web.authenticated
    @authorized
    async def post(self, region: str | None = None) -> None:
        self.regions.unregister(region)
        self.write_json({})
