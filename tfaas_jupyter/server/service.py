"""The protocol-neutral core (the data plane): "predict these named tensors with this
model version", with no wire format and no HTTP in it.

The protocol adapters (:mod:`tfaas_jupyter.server.protocols`) decode a request into
a call here and encode its answer; the catalogue
(:mod:`~tfaas_jupyter.server.catalogue`) and the upload service
(:class:`~tfaas_jupyter.server.uploads.Uploads`) are services of their own beside it.
TensorFlow never runs in this process: models are loaded and run by the model worker
(:mod:`tfaas_jupyter.server.supervisor`), reached through the batcher (the
:class:`~tfaas_jupyter.server.batching.Runner`). Errors of the worker are
:class:`~tfaas_jupyter.server.errors.WorkerError` and reach the handlers as they are:
their kind decides their HTTP status.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from . import shaping
from .batching import Runner
from .capture import Capture, capture_prediction
from .errors import (
    BadRequest,
    ErrorKind,
    Unavailable,
    Unloadable,
    WorkerError,
    of_model,
)
from .keys import Grant, check_model_access
from .modelfiles import ModelVersion
from .names import check_model_name, check_version_or_label
from .repository import Repository
from .stats import Stats
from .timing import Stages

log = logging.getLogger(__name__)


@dataclass
class Limits:
    max_upload_size: int = 512 * 1024**2
    max_extracted_size: int = 2 * 1024**3
    max_rows: int = 100_000
    max_values: int = 1_000_000
    max_image_pixels: int = 40_000_000
    max_concurrent_requests: int = 1000


class TFaaS:
    """The prediction core: model versions resolved in the repository, run by the model
    worker through the batcher, under the admission limit; and the statistics."""

    def __init__(self, repository: Repository, worker: Any, runner: Runner,
                 limits: Limits) -> None:
        self.repository = repository
        self.worker = worker
        self.runner = runner
        self.limits = limits
        self.stats = Stats()
        #: The model used when a request names none, as the original's "current" model:
        #: the last one uploaded through the form, or set with POST /params.
        self.default_model: str | None = None
        self.shaper = shaping.Shaper()
        #: Predictions being served now (bounded by ``limits.max_concurrent_requests``).
        self.in_flight = 0
        #: The record of what was scored (``TFaaSApp.capture_dir``; None: off).
        self.capture: Capture | None = None

    # -- models ----------------------------------------------------------------

    def resolve(self, name: str | None, version: Any = None, *,
                grant: Grant | None = None) -> ModelVersion:
        """The version ``version`` (a number, a label, or None: the latest) of model
        ``name`` (None: the default model), if ``grant`` (the request's key; None: a
        Jupyter login) covers it."""
        name = name or self.default_model
        if not name:
            raise BadRequest("no model name is provided: set 'model' in the request")
        name = check_model_name(name)
        check_model_access(grant, name)
        return self.repository.resolve(name, check_version_or_label(version))

    @staticmethod
    @contextlib.contextmanager
    def loading(mv: ModelVersion) -> Iterator[None]:
        """Where the worker may load ``mv``: its loader's refusal becomes a 409 naming
        the version (:class:`Unloadable`), and the version's ``load_error``."""
        try:
            yield
        except WorkerError as exc:
            if exc.kind is ErrorKind.LOAD and not isinstance(exc, Unloadable):
                mv.load_error = exc.message
                raise Unloadable(mv.name, mv.version, exc.message) from None
            raise

    async def signature(self, mv: ModelVersion, stages: Stages | None = None) -> dict[str, Any]:
        """``mv``'s signature, loading it in the worker the first time (a cold start
        that ``stages`` records, when given)."""
        if mv.signature is None:
            with self.loading(mv):
                sig, cold = await self.worker.loaded(mv.ref)
            if stages is not None and cold is not None:
                stages.cold_start = cold
            self.repository.remember_signature(mv, sig)
        assert mv.signature is not None
        return mv.signature

    # -- prediction --------------------------------------------------------------

    async def predict_inputs(
        self, mv: ModelVersion, inputs: Sequence[np.ndarray], stages: Stages | None = None
    ) -> list[np.ndarray]:
        """Run model version ``mv`` on one array per model input (signature order, rows
        first), each cast exactly to its input's dtype (or a 400); answers one
        ``[rows, values]`` array per output, in the model's own dtypes.

        For requests that carry typed tensors (:meth:`predict_rows` is for rows of
        numbers). Holds a prediction slot (:meth:`admit`); errors name the model for
        the statistics.
        """
        with self.admit():
            with of_model(mv.name):
                signature = await self.signature(mv, stages)
                arrays = shaping.typed_inputs(mv.name, signature, inputs)
                n_rows = arrays[0].shape[0] if arrays and arrays[0].ndim else 0
                return await self._run(mv, arrays, n_rows, stages)

    async def predict_rows(
        self, name: str | None, version: Any, rows: np.ndarray, keys: Sequence[str] | None,
        grant: Grant | None = None, stages: Stages | None = None,
    ) -> tuple[ModelVersion, list[np.ndarray]]:
        """Run the model on 2-D ``rows`` of values (columns named ``keys``, if given);
        answers one ``[rows, values]`` array per output, in the model's own dtypes."""
        mv = self.resolve(name, version, grant=grant)
        with of_model(mv.name):
            signature = await self.signature(mv, stages)
            inputs = self.shaper.rows_to_inputs(mv.key, mv.name, mv.params, signature, rows,
                                                keys)
            return mv, await self._run(mv, inputs, rows.shape[0], stages)

    async def run(self, mv: ModelVersion, inputs: Sequence[np.ndarray],
                  stages: Stages | None = None) -> list[np.ndarray]:
        """Run ``mv`` on inputs already shaped and typed for it; answers the model's own
        outputs, shapes and dtypes as it returns them. Every API reaches the runner
        (batching, the worker) through here; worker errors arrive as API errors. Where
        the time went, and any cold start, is added to ``stages`` (when given)."""
        model = mv.ref
        with self.loading(mv):
            if not self.worker.running:
                # A cold start: wait for the worker and this model here, in the request's
                # own call, so that its answer says what it waited for (Server-Timing)
                # even when its rows then go out in a batch with others.
                _, cold = await self.worker.loaded(model)
                if stages is not None and cold is not None:
                    stages.cold_start = cold
            if stages is None:
                outputs = await self.runner.predict(model, list(inputs))
            else:
                if not stages.run_start:
                    stages.run_start = time.perf_counter()
                outputs = await self.runner.predict(model, list(inputs), stages)
                stages.run_end = time.perf_counter()
            if self.capture is not None:
                capture_prediction(self.capture, mv, inputs, outputs, stages)
            return outputs

    async def _run(self, mv: ModelVersion, inputs: list[np.ndarray],
                   n_rows: int, stages: Stages | None) -> list[np.ndarray]:
        return shaping.output_rows(await self.run(mv, inputs, stages), n_rows)

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of the ``max_concurrent_requests`` prediction slots, or refuse with 503.

        A storm of requests cannot pile up decoded inputs in memory: beyond the limit
        each is answered at once with "server busy" (and Retry-After).
        """
        limit = self.limits.max_concurrent_requests
        if limit > 0 and self.in_flight >= limit:
            self.stats.busy += 1
            raise Unavailable(
                f"server busy: {self.in_flight} predictions in flight (the limit is {limit}); "
                "retry later"
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
