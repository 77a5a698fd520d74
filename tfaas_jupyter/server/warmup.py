"""Warm-up, from the server's side: which batch sizes a model version is warmed up at
when the worker loads it (``TFaaSApp.warmup``), and, after a worker crash, the
versions it held loaded again in the background.

The worker runs the warm-up (``worker/warmup.py``) before the version enters its
cache, so no request is served from a cold model: at batch size 1 and at the largest
batch the batcher may send it (its params.json's ``max_batch_size`` or the server's;
1 when batching is off for it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from .batching import BatchConfig
from .modelref import ModelRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmupPolicy:
    """The batch sizes of a version's warm-up, from the batching policy it runs under."""

    batching: BatchConfig

    def sizes(self, params: Mapping[str, Any]) -> list[int]:
        config = self.batching.overridden(dict(params))
        return sorted({1, config.max_batch_size}) if config.enabled else [1]


class LoadedVersions:
    """The versions the worker holds, by cache key, as the server loaded them (at most
    ``capacity``, the worker's cache size: older ones were evicted there too), so that
    a crashed worker's successor can load them again."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._refs: OrderedDict[str, ModelRef] = OrderedDict()
        self._task: asyncio.Task[None] | None = None

    def loaded(self, ref: ModelRef) -> None:
        self._refs[ref.key] = ref
        self._refs.move_to_end(ref.key)
        while len(self._refs) > self.capacity:
            self._refs.popitem(last=False)

    def moved(self, ref: ModelRef) -> None:
        """``ref``'s version now lives at ``ref.path`` (an upload loads a version from
        its staging folder, then commits it): a reload reads it from there."""
        if ref.key in self._refs:
            self._refs[ref.key] = ref

    def unloaded(self, prefix: str) -> None:
        for key in [k for k in self._refs if k.startswith(prefix)]:
            del self._refs[key]

    def forget(self) -> list[ModelRef]:
        """The versions held, most recently loaded last; then none (a stopped worker
        holds nothing)."""
        refs = list(self._refs.values())
        self._refs.clear()
        return refs

    def reload(self, load: Callable[[ModelRef], Awaitable[Any]]) -> None:
        """Load again, one after another in a background task, what the crashed worker
        held (the most recently used first). A version that fails is logged and skipped;
        a request for one still loading waits for its load in the worker."""
        refs = self.forget()[::-1]
        if not refs or (self._task is not None and not self._task.done()):
            return

        async def run() -> None:
            for ref in refs:
                try:
                    await load(ref)
                except Exception as exc:  # the next request reports the problem
                    log.info("tfaas: reloading %s after a worker crash failed: %s",
                             ref.key, getattr(exc, "message", exc))

        self._task = asyncio.ensure_future(run())
