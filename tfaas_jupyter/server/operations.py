"""The operations of the model worker, as the server calls them: load, predict,
unload, export. Each is one typed request (:mod:`tfaas_jupyter.worker.ops`) sent by
the supervisor's :meth:`_request` (which starts the worker if needed and bounds the
call's time) and one typed answer; a prediction's answer carries the model's time
and any cold start as values (:class:`~tfaas_jupyter.server.timing.ModelAnswer`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from ..worker import ops
from ..worker.wire import ErrorKind
from .devices import GpuConfig
from .errors import ModelError, ModelTooBig
from .modelref import ModelRef
from .shm import worker_frame
from .timing import ColdStart, ModelAnswer
from .warmup import LoadedVersions, WarmupPolicy
from .workerproc import WorkerProcess

#: Tries of a prediction whose model the worker no longer holds when it arrives (each
#: after loading it again): an eviction or a restart for memory between the load and
#: the prediction takes one.
PREDICT_ATTEMPTS = 3


class WorkerOperations:
    """The worker's operations, over the lifecycle of
    :class:`~tfaas_jupyter.server.supervisor.ModelWorker` (which this is a base of)."""

    request_timeout: float
    load_timeout: float
    _last_cold_start: ColdStart | None

    # provided by the supervisor
    _conn: WorkerProcess | None
    cache_size: int
    _stopped_reason: str
    _loads_in_flight: int

    #: which GPUs the worker sees and its GPU memory settings (the app's)
    gpu: GpuConfig = GpuConfig()

    #: the batch sizes a load warms a version up at (None: no warm-up); the app's
    warmup_policy: WarmupPolicy | None = None
    _held: LoadedVersions | None = None
    _warmups: OrderedDict[str, float | None] | None = None

    @property
    def loaded_versions(self) -> LoadedVersions:
        """The versions the worker holds, as loaded from here (reloaded after a crash)."""
        if self._held is None:
            self._held = LoadedVersions(self.cache_size)
        return self._held

    def warmup_seconds(self, key: str) -> float | None:
        """The seconds of the warm-up of the last load of ``key`` (None: none ran)."""
        return self._warmups.get(key) if self._warmups is not None else None

    def _loaded(self, model: ModelRef, warmup_s: float | None) -> None:
        self.loaded_versions.loaded(model)
        if self._warmups is None:
            self._warmups = OrderedDict()
        self._warmups[model.key] = warmup_s
        while len(self._warmups) > 256:
            self._warmups.popitem(last=False)

    def _worker_ended(self) -> None:
        """The worker ended: if it crashed (it was not stopped), its successor loads
        and warms up the versions it held, in the background."""
        if self._stopped_reason == "crashed":
            self.loaded_versions.reload(self._load)

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def _adopt_loop(self) -> None:
        raise NotImplementedError

    async def _ensure(self) -> Any:
        raise NotImplementedError

    async def _recycle(self, why: str) -> None:
        raise NotImplementedError

    async def _figures_changed(self) -> None:
        raise NotImplementedError

    async def _request(self, header: dict[str, Any], arrays: Sequence[np.ndarray] = (),
                       timeout: float | None = None, *, use: bool = True,
                       ) -> tuple[dict[str, Any], list[np.ndarray]]:
        raise NotImplementedError

    async def load(self, model: ModelRef) -> dict[str, Any]:
        """Make sure the worker holds ``model`` (loading it if needed, within the load
        budget); returns its signature ``{"inputs": [...], "outputs": [...]}``."""
        return (await self.loaded(model))[0]

    async def loaded(self, model: ModelRef) -> tuple[dict[str, Any], ColdStart | None]:
        """:meth:`load`, also answering the cold start the call went through: None when
        the worker was running and held the model already."""
        self._adopt_loop()
        return await self._load(model)

    async def _load(self, model: ModelRef) -> tuple[dict[str, Any], ColdStart | None]:
        stopped = not self.running
        began = time.monotonic()
        if stopped:
            self.loaded_versions.forget()  # a new worker holds nothing yet
            await self._ensure()
        started = time.monotonic()
        policy = self.warmup_policy
        request = ops.Load(model.key, model.path, model.format, dict(model.params),
                           policy.sizes(model.params) if policy is not None else None)
        timeout = self.request_timeout + self.load_timeout
        self._loads_in_flight += 1
        try:
            try:
                reply, _ = await self._request(ops.request_header(request), timeout=timeout)
            except ModelError as exc:
                if exc.kind is not ErrorKind.RESTART:
                    raise
                # the worker outgrew its memory budget: a new one holds the model
                await self._recycle(exc.message)
                try:
                    reply, _ = await self._request(ops.request_header(request),
                                                   timeout=timeout)
                except ModelError as again:
                    if again.kind is ErrorKind.RESTART:  # a new worker has no room either
                        raise ModelTooBig(again.message) from None
                    raise
        finally:
            self._loads_in_flight -= 1
        loaded = ops.Loaded.parse(reply)
        self._loaded(model, loaded.warmup_s)
        if self._conn is not None:
            self._conn.has_loaded = True
            if loaded.loaded:
                await self._figures_changed()
        cold = None
        if stopped or loaded.loaded:
            cold = ColdStart(model.key, started - began if stopped else 0.0,
                             time.monotonic() - started)
            if stopped:
                self._last_cold_start = cold
        return {"inputs": loaded.inputs, "outputs": loaded.outputs}, cold

    async def predict(self, model: ModelRef, inputs: Sequence[np.ndarray]) -> ModelAnswer:
        """Run ``model`` on one array per input (signature order, shaped ``[rows, ...]``).

        Answers one read-only array per output, in output order, with the seconds the
        worker spent in the model. The request names the model by its key only; when
        the worker does not hold it, it is loaded: first, when the worker is new (it
        holds nothing yet); else after its ``not_loaded`` answer (evicted, or a new
        worker), and the request is sent again (up to :data:`PREDICT_ATTEMPTS` times in
        all). The answer carries that load as its cold start.
        """
        self._adopt_loop()
        # inputs read from a client's shared memory region go as where to find them
        frame, inputs = worker_frame(list(inputs))
        header = ops.request_header(ops.Predict(model.key, frame.get("regions")))
        cold = None
        conn = self._conn
        if conn is None or not conn.alive or not conn.has_loaded:
            _, cold = await self._load(model)
        for attempt in range(PREDICT_ATTEMPTS):
            try:
                reply, out = await self._request(header, inputs)
                break
            except ModelError as exc:
                if exc.kind is not ErrorKind.NOT_LOADED or attempt == PREDICT_ATTEMPTS - 1:
                    raise
            # evicted, or the worker was restarted for its memory, since: load again
            _, cold = await self._load(model)
        return ModelAnswer(out, ops.Predicted.parse(reply).model_s, cold)

    async def unload(self, prefix: str) -> None:
        """Evict every cached model whose key starts with ``prefix``.

        A no-op when the worker is not running (nothing is cached then).
        """
        self._adopt_loop()
        self.loaded_versions.unloaded(prefix)
        c = self._conn
        if c is None or not c.alive:
            return
        await self._request(ops.request_header(ops.Unload(prefix)))
        await self._figures_changed()

    async def export(self, model: ModelRef, target: str) -> dict[str, Any]:
        """Write the model as a SavedModel with ``serving_default`` at ``target``."""
        request = ops.Export(model.key, model.path, model.format, dict(model.params), target)
        reply, _ = await self._request(ops.request_header(request),
                                       timeout=self.request_timeout + self.load_timeout)
        exported = ops.Exported.parse(reply)
        return {"inputs": exported.inputs, "outputs": exported.outputs}
