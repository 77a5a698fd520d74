"""The core of tfaas-jupyter: what every endpoint does, with no HTTP in it.

Handlers parse a request, call one method here and encode the answer. TensorFlow
never runs in this process: models are loaded and run by the model worker
(:mod:`tfaas_jupyter.server.supervisor`), reached through the batcher (the
:class:`~tfaas_jupyter.server.batching.Runner`). Errors of the worker are
:class:`~tfaas_jupyter.server.errors.WorkerError` and reach the handlers as they are:
their kind decides their HTTP status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .. import __version__
from . import codecs, shaping, uploads
from .batching import Runner
from .errors import (
    BadRequest,
    ErrorKind,
    NotFound,
    TFaaSError,
    Unavailable,
    Unloadable,
    WorkerError,
)
from .keys import Grant, check_model_access, may_see_model
from .modelref import ModelRef
from .multipart import FilePart, Form
from .names import check_model_name, check_version, check_version_or_label
from .repository import ModelVersion, Repository
from .stats import Stats
from .sysinfo import machine_status
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
    """The model service: repository + model worker + batching + statistics."""

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

    def describe(self, mv: ModelVersion, versions: Sequence[ModelVersion] = ()) -> dict[str, Any]:
        """The model as /models lists it: its params.json keys first, then ours."""
        doc = dict(mv.params)
        doc.setdefault("name", mv.name)
        doc["version"] = mv.version
        doc["versions"] = [v.version for v in versions] or [mv.version]
        doc["format"] = mv.format
        doc["created"] = mv.meta.get("created")
        doc["timestamp"] = doc.get("timestamp") or mv.meta.get("created")
        doc["inputs"] = (mv.signature or {}).get("inputs")
        doc["outputs"] = (mv.signature or {}).get("outputs")
        doc["label_names"] = mv.labels
        if mv.load_error is not None:  # its predictions answer 409 with this reason
            doc["load_error"] = mv.load_error
        return doc

    def models(self, grant: Grant | None = None) -> list[dict[str, Any]]:
        """Every model ``grant`` may see (None: a Jupyter login, all)."""
        result = []
        for name in self.repository.names():
            if not may_see_model(grant, name):
                continue
            try:
                versions = self.repository.versions(name)
            except NotFound:
                continue
            doc = self.describe(versions[-1], versions)
            doc["version_labels"] = self.repository.labels(name)
            result.append(doc)
        return result

    def model_detail(self, name: str, grant: Grant | None = None) -> dict[str, Any]:
        check_model_access(grant, check_model_name(name))
        versions = self.repository.versions(name)
        doc = self.describe(versions[-1], versions)
        doc["version_details"] = [v.describe() for v in versions]
        doc["version_labels"] = self.repository.labels(name)
        return doc

    def params(self, name: str | None, version: Any = None,
               grant: Grant | None = None) -> dict[str, Any]:
        return dict(self.resolve(name, version, grant=grant).params)

    def set_default(self, params: dict[str, Any], grant: Grant | None = None) -> str:
        """The original's POST /params: make a model the default for requests naming none."""
        name = params.get("name") if isinstance(params, dict) else None
        mv = self.resolve(name if isinstance(name, str) else None, grant=grant)
        self.default_model = mv.name
        return mv.name

    # -- upload and delete -----------------------------------------------------

    async def upload_form(self, form: Form, staging: Path, *, base64_model: bool,
                          grant: Grant | None = None, stages: Stages | None = None) -> dict:
        staged = await asyncio.to_thread(
            uploads.stage_form, form, staging,
            base64_model=base64_model, max_extracted=self.limits.max_extracted_size,
        )
        mv = await self._validate_and_commit(staged, grant, stages)
        self.default_model = mv.name
        return self._upload_answer(mv, staged.renamed_from)

    async def upload_bundle(self, body: Path, staging: Path, *, grant: Grant | None = None,
                            stages: Stages | None = None) -> dict:
        staged = await asyncio.to_thread(
            uploads.stage_bundle, body, staging, max_extracted=self.limits.max_extracted_size
        )
        mv = await self._validate_and_commit(staged, grant, stages)
        return self._upload_answer(mv, staged.renamed_from)

    def _upload_answer(self, mv: ModelVersion, renamed_from: str | None = None) -> dict:
        answer = {
            "name": mv.name, "version": mv.version, "format": mv.format,
            "inputs": (mv.signature or {}).get("inputs"),
            "outputs": (mv.signature or {}).get("outputs"),
            "labels": mv.labels,
        }
        if renamed_from is not None:
            answer["renamed_from"] = renamed_from
            answer["note"] = (f"params.json names the model {renamed_from!r}; "
                              f"stored as {mv.name!r}")
        return answer

    async def _validate_and_commit(self, staged: uploads.StagedUpload, grant: Grant | None,
                                   stages: Stages | None) -> ModelVersion:
        """Load the staged model in the worker; commit it only if TensorFlow can serve it
        (the load's cold start goes to ``stages``, when given)."""
        check_model_access(grant, staged.name)
        meta = staged.meta()
        meta["uid"] = uid = uuid.uuid4().hex
        ref = ModelRef(key=f"{staged.name}@{uid}", path=str(staged.model_path),
                       format=staged.format, params=staged.params, name=staged.name)
        try:
            signature, cold = await self.worker.loaded(ref)
        except WorkerError as exc:
            # the upload is at fault
            if exc.kind in (ErrorKind.BAD_INPUT, ErrorKind.MODEL, ErrorKind.LOAD):
                raise BadRequest(f"unreadable model: {exc.message}") from None
            raise
        if stages is not None and cold is not None:
            stages.cold_start = cold
        meta["signature"] = signature
        return await asyncio.to_thread(self.repository.commit, staged.name, staged.staging, meta)

    async def delete(self, name: str | None, version: Any = None,
                     grant: Grant | None = None) -> dict:
        if not name:
            raise BadRequest("no model name is provided")
        name = check_model_name(name)
        check_model_access(grant, name)
        number = check_version(version)
        # the worker's cache key of a version, read before the version is gone
        prefix = f"{name}@" if number is None else self.repository.get(name, number).key
        deleted = await asyncio.to_thread(self.repository.delete_unlabelled, name, number)
        try:
            await self.worker.unload(prefix)
            if number is None:
                self.stats.forget(name)
                if self.default_model == name:
                    self.default_model = None
        except Exception as exc:  # the model is gone from disk; a dead worker holds nothing
            log.info("tfaas: unload of %s after delete failed: %s", name, exc)
        return {"name": name, "deleted_versions": deleted}

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
            try:
                signature = await self.signature(mv, stages)
                arrays = shaping.typed_inputs(mv.name, signature, inputs)
                n_rows = arrays[0].shape[0] if arrays and arrays[0].ndim else 0
                return await self._run(mv, arrays, n_rows, stages)
            except TFaaSError as exc:
                exc.model = mv.name
                raise

    async def predict_rows(
        self, name: str | None, version: Any, rows: np.ndarray, keys: Sequence[str] | None,
        grant: Grant | None = None, stages: Stages | None = None,
    ) -> tuple[ModelVersion, list[np.ndarray]]:
        """Run the model on 2-D ``rows`` of values (columns named ``keys``, if given);
        answers one ``[rows, values]`` array per output, in the model's own dtypes."""
        mv = self.resolve(name, version, grant=grant)
        try:
            signature = await self.signature(mv, stages)
            inputs = self.shaper.rows_to_inputs(mv.key, mv.name, mv.params, signature, rows,
                                                keys)
            return mv, await self._run(mv, inputs, rows.shape[0], stages)
        except TFaaSError as exc:
            exc.model = mv.name
            raise

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
                return await self.runner.predict(model, list(inputs))
            if not stages.run_start:
                stages.run_start = time.perf_counter()
            outputs = await self.runner.predict(model, list(inputs), stages)
            stages.run_end = time.perf_counter()
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

    async def predict_json(self, body: bytes, grant: Grant | None = None,
                           stages: Stages | None = None) -> tuple[str, int, bytes]:
        with self.admit():
            return await self._predict_json(body, grant, stages)

    async def predict_proto(self, body: bytes, grant: Grant | None = None,
                            stages: Stages | None = None) -> tuple[str, bytes]:
        with self.admit():
            return await self._predict_proto(body, grant, stages)

    async def predict_image(self, form: Form, grant: Grant | None = None,
                            stages: Stages | None = None) -> tuple[str, bytes]:
        with self.admit():
            return await self._predict_image(form, grant, stages)

    async def _predict_json(self, body: bytes, grant: Grant | None,
                            stages: Stages | None) -> tuple[str, int, bytes]:
        request = codecs.decode_json_request(
            body, max_rows=self.limits.max_rows, max_values=self.limits.max_values
        )
        mv, outputs = await self.predict_rows(
            request.model, request.version, request.values, request.keys, grant, stages
        )
        n_rows = request.values.shape[0]
        return mv.name, n_rows, codecs.encode_json_rows(outputs, request.single_row)

    async def _predict_proto(self, body: bytes, grant: Grant | None,
                             stages: Stages | None) -> tuple[str, bytes]:
        request = codecs.decode_proto_row(body, max_values=self.limits.max_values)
        mv, outputs = await self.predict_rows(request.model, None, request.values, request.keys,
                                              grant, stages)
        return mv.name, codecs.encode_proto_predictions(outputs, mv.labels)

    async def _predict_image(self, form: Form, grant: Grant | None,
                             stages: Stages | None) -> tuple[str, bytes]:
        part = form.files.get("image")
        if part is None:
            raise BadRequest("unable to read image: the request has no file part named 'image'")
        mv = self.resolve(form.text("model"), form.text("version"), grant=grant)
        try:
            return mv.name, await self._image_answer(mv, part, stages)
        except TFaaSError as exc:
            exc.model = mv.name
            raise

    async def _image_answer(self, mv: ModelVersion, part: FilePart,
                            stages: Stages | None) -> bytes:
        layout = shaping.image_layout(mv.name, await self.signature(mv, stages), mv.params)
        data = await asyncio.to_thread(part.read_bytes)
        image = await asyncio.to_thread(
            codecs.decode_image, data, channels=layout.channels, size=layout.size,
            max_pixels=self.limits.max_image_pixels,
        )
        outputs = await self._run(mv, [shaping.image_input(image, layout)], 1, stages)
        return codecs.encode_image_answer(outputs, part.filename, mv.labels)

    # -- status ------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = machine_status()
        doc.update(
            {
                "NGo": len(asyncio.all_tasks()),
                "Uptime": self.stats.uptime,
                "getRequests": self.stats.by_method.get("GET", 0),
                "postRequests": self.stats.by_method.get("POST", 0),
                "deleteRequests": self.stats.by_method.get("DELETE", 0),
                "errors": self.stats.errors,
                "version": __version__,
                "python": sys.version.split()[0],
                "model_dir": str(self.repository.root),
                "models_on_disk": self.repository.names(),
                "default_model": self.default_model,
                "models": {k: v.as_dict() for k, v in sorted(self.stats.models.items())},
                "endpoints": dict(sorted(self.stats.by_endpoint.items())),
            }
        )
        try:  # never starts the worker: a status query is no use of it
            worker = await asyncio.wait_for(self.worker.status(), timeout=30)
        except Exception as exc:
            worker = {"state": "unavailable", "summary": "unavailable",
                      "error": getattr(exc, "message", str(exc))}
        doc["worker"] = worker
        doc["tensorflow"] = worker.get("tensorflow")
        loaded = worker.get("loaded") or []
        doc["models_loaded"] = [key.split("@", 1)[0] for key in loaded]
        doc["cache"] = {"size": len(loaded), "capacity": worker.get("cache_size")}
        doc["batching"] = self.runner.status()
        return doc

