"""The core of tfaas-jupyter: what every endpoint does, with no HTTP in it.

Handlers parse a request, call one method here and encode the answer. TensorFlow
never runs in this process: models are loaded and run by the model worker
(:mod:`tfaas_jupyter.supervisor`), reached through the batcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .. import __version__
from . import codecs, uploads
from .errors import BadRequest, NotFound, TFaaSError, Unavailable
from .keys import check_model_access, may_see_model
from .multipart import FilePart, Form
from .names import check_model_name, check_version
from .repository import ModelVersion, Repository
from .stats import Stats
from .sysinfo import machine_status

log = logging.getLogger(__name__)


@dataclass
class Limits:
    max_upload_size: int = 512 * 1024**2
    max_extracted_size: int = 2 * 1024**3
    max_rows: int = 100_000
    max_image_pixels: int = 40_000_000
    max_concurrent_requests: int = 1000


def _worker_error(exc: Exception) -> TFaaSError:
    """Turn a supervisor error into an API error, keeping its status and message."""
    status = getattr(exc, "status", 503)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return TFaaSError(message, status)


#: How a row's values feed one model input: first value, count, per-row shape, dtype, name.
_InputPlan = tuple[int, int, tuple[int, ...], np.dtype, str]
_F32 = np.dtype(np.float32)


def _numpy_dtype(name: Any) -> np.dtype:
    """The numpy dtype of a signature's input (float32 when unknown or not numeric)."""
    try:
        dtype = np.dtype(name or "float32")
    except TypeError:  # e.g. bfloat16, which only the worker's TensorFlow knows
        return _F32
    return dtype if dtype.kind in "fiub" else _F32


def _as_input(values: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    """A request's values (float64, so integers up to 2**53 are exact) as an input's dtype.

    An integer input gets exactly the integers sent, and a clear 400 for a fraction or a
    number out of its range (no silent truncation or wrap-around). The codecs have
    checked that every value is a finite float32.
    """
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        whole = (values >= info.min) & (values < float(info.max) + 1) & (values == np.floor(values))
        if not whole.all():
            raise BadRequest(
                f"input {name!r} takes whole numbers from {info.min} to {info.max}"
            )
        return np.ascontiguousarray(values, dtype=dtype)
    if dtype.kind == "b":
        return np.ascontiguousarray(values != 0)
    return np.ascontiguousarray(values, dtype=dtype)


class TFaaS:
    """The model service: repository + model worker + batching + statistics."""

    def __init__(self, repository: Repository, worker: Any, runner: Any, limits: Limits) -> None:
        self.repository = repository
        self.worker = worker
        self.runner = runner
        self.limits = limits
        self.stats = Stats()
        #: The model used when a request names none, as the original's "current" model:
        #: the last one uploaded through the form, or set with POST /params.
        self.default_model: str | None = None
        self._input_maps: dict[tuple[str, tuple[str, ...]], np.ndarray | None] = {}
        #: (model key, values per row) -> how a row is cut into the model's inputs
        self._plans: dict[tuple[str, int], list[_InputPlan]] = {}
        #: Predictions being served now (bounded by ``limits.max_concurrent_requests``).
        self.in_flight = 0

    # -- models ----------------------------------------------------------------

    def resolve(self, name: str | None, version: Any = None) -> ModelVersion:
        name = name or self.default_model
        if not name:
            raise BadRequest("no model name is provided: set 'model' in the request")
        check_model_access(check_model_name(name))
        return self.repository.get(name, check_version(version))

    async def signature(self, mv: ModelVersion) -> dict[str, Any]:
        if mv.signature is None:
            try:
                sig = await self.worker.load(mv.key, str(mv.model_path), mv.format, mv.params)
            except Exception as exc:
                raise _worker_error(exc) from None
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
        return doc

    def models(self) -> list[dict[str, Any]]:
        result = []
        for name in self.repository.names():
            if not may_see_model(name):
                continue
            try:
                versions = self.repository.versions(name)
            except NotFound:
                continue
            result.append(self.describe(versions[-1], versions))
        return result

    def model_detail(self, name: str) -> dict[str, Any]:
        check_model_access(check_model_name(name))
        versions = self.repository.versions(name)
        doc = self.describe(versions[-1], versions)
        doc["version_details"] = [v.describe() for v in versions]
        return doc

    def params(self, name: str | None, version: Any = None) -> dict[str, Any]:
        return dict(self.resolve(name, version).params)

    def set_default(self, params: dict[str, Any]) -> str:
        """The original's POST /params: make a model the default for requests naming none."""
        name = params.get("name") if isinstance(params, dict) else None
        mv = self.resolve(name if isinstance(name, str) else None)
        self.default_model = mv.name
        return mv.name

    # -- upload and delete -----------------------------------------------------

    async def upload_form(self, form: Form, staging: Path, *, base64_model: bool) -> dict:
        staged = await asyncio.to_thread(
            uploads.stage_form, form, staging,
            base64_model=base64_model, max_extracted=self.limits.max_extracted_size,
        )
        mv = await self._validate_and_commit(staged)
        self.default_model = mv.name
        return self._upload_answer(mv)

    async def upload_bundle(self, body: Path, staging: Path) -> dict:
        staged = await asyncio.to_thread(
            uploads.stage_bundle, body, staging, max_extracted=self.limits.max_extracted_size
        )
        mv = await self._validate_and_commit(staged)
        return self._upload_answer(mv)

    def _upload_answer(self, mv: ModelVersion) -> dict:
        return {
            "name": mv.name, "version": mv.version, "format": mv.format,
            "inputs": (mv.signature or {}).get("inputs"),
            "outputs": (mv.signature or {}).get("outputs"),
            "labels": mv.labels,
        }

    async def _validate_and_commit(self, staged: uploads.StagedUpload) -> ModelVersion:
        """Load the staged model in the worker; commit it only if TensorFlow can serve it."""
        check_model_access(staged.name)
        meta = staged.meta()
        meta["uid"] = uid = uuid.uuid4().hex
        key = f"{staged.name}@{uid}"
        try:
            signature = await self.worker.load(
                key, str(staged.model_path), staged.format, staged.params
            )
        except Exception as exc:
            err = _worker_error(exc)
            if err.status == 400:
                err = BadRequest(f"unreadable model: {err.message}")
            raise err from None
        meta["signature"] = signature
        return await asyncio.to_thread(self.repository.commit, staged.name, staged.staging, meta)

    async def delete(self, name: str | None, version: Any = None) -> dict:
        if not name:
            raise BadRequest("no model name is provided")
        name = check_model_name(name)
        check_model_access(name)
        number = check_version(version)
        # the worker's cache key of a version, read before the version is gone
        prefix = f"{name}@" if number is None else self.repository.get(name, number).key
        deleted = await asyncio.to_thread(self.repository.delete, name, number)
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

    def _input_map(self, mv: ModelVersion, keys: Sequence[str] | None) -> np.ndarray | None:
        """Column order that maps request keys onto the model's params ``keys``.

        Where params.json lists no keys, the order of the values alone counts (as
        the original); where it does, every listed key must be sent exactly once.
        """
        model_keys = mv.params.get("keys")
        if not model_keys or keys is None:
            return None
        cache_key = (mv.key, tuple(keys))
        if cache_key in self._input_maps:
            return self._input_maps[cache_key]
        position = {k: i for i, k in enumerate(keys)}
        if len(position) != len(keys):
            raise BadRequest("'keys' has duplicates")
        missing = [k for k in model_keys if k not in position]
        unknown = [k for k in keys if k not in set(model_keys)]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing key(s): {', '.join(map(str, missing[:10]))}")
            if unknown:
                parts.append(f"unknown key(s): {', '.join(map(str, unknown[:10]))}")
            raise BadRequest(f"model {mv.name!r}: " + "; ".join(parts))
        order = np.asarray([position[k] for k in model_keys], dtype=np.intp)
        mapping = None if np.array_equal(order, np.arange(len(keys))) else order
        if len(self._input_maps) > 1024:
            self._input_maps.clear()
        self._input_maps[cache_key] = mapping
        return mapping

    def _split_inputs(
        self, mv: ModelVersion, signature: dict[str, Any], rows: np.ndarray
    ) -> list[np.ndarray]:
        """Cut each row's values into the model's inputs, shaped as the signature says."""
        n_rows, n_values = rows.shape
        plan = self._plans.get((mv.key, n_values))
        if plan is None:
            plan = self._input_plan(mv, signature, n_values)
            if len(self._plans) > 1024:
                self._plans.clear()
            self._plans[(mv.key, n_values)] = plan
        if len(plan) == 1:  # one input takes the whole row: no slicing
            _, _, dims, dtype, name = plan[0]
            return [_as_input(rows, dtype, name).reshape(n_rows, *dims)]
        return [
            _as_input(rows[:, start : start + size], dtype, name).reshape(n_rows, *dims)
            for start, size, dims, dtype, name in plan
        ]

    @staticmethod
    def _input_plan(
        mv: ModelVersion, signature: dict[str, Any], n_values: int
    ) -> list[_InputPlan]:
        """(first value, number of values, per-row shape, dtype, name) of each model input."""
        specs = signature.get("inputs") or []
        if not specs:
            raise BadRequest(f"model {mv.name!r} has no inputs")
        sizes: list[int | None] = []
        for spec in specs:
            dims = list(spec.get("shape") or [])[1:]
            if any(d is None or d < 0 for d in dims):
                sizes.append(None)
            else:
                sizes.append(math.prod(dims))
        if None in sizes:
            if len(specs) == 1 and len(specs[0].get("shape") or []) == 2:
                sizes = [n_values]
            else:
                raise BadRequest(
                    f"model {mv.name!r} has inputs of unknown size; "
                    "a flat vector of values cannot be mapped onto them"
                )
        expected = sum(s or 0 for s in sizes)
        if expected != n_values:
            raise BadRequest(
                f"model {mv.name!r} expects {expected} values per row, got {n_values}"
            )
        plan, start = [], 0
        for spec, size in zip(specs, sizes):
            size = size or 0
            dims = list(spec.get("shape") or [None, size])[1:]
            if any(d is None or d < 0 for d in dims):
                dims = [size]
            plan.append((start, size, tuple(dims), _numpy_dtype(spec.get("dtype")),
                         str(spec.get("name"))))
            start += size
        return plan

    async def predict_rows(
        self, name: str | None, version: Any, rows: np.ndarray, keys: Sequence[str] | None
    ) -> tuple[ModelVersion, np.ndarray]:
        """Run the model on ``rows``; answer one row of float32 outputs per input row."""
        mv = self.resolve(name, version)
        try:
            signature = await self.signature(mv)
            mapping = self._input_map(mv, keys)
            if mapping is not None:
                if rows.shape[1] != len(mapping):
                    raise BadRequest(
                        f"{len(keys or [])} keys but {rows.shape[1]} values per row"
                    )
                rows = rows[:, mapping]
            inputs = self._split_inputs(mv, signature, rows)
            outputs = await self._run(mv, inputs)
            return mv, self._flatten_outputs(outputs, rows.shape[0])
        except TFaaSError as exc:
            exc.model = mv.name
            raise

    async def _run(self, mv: ModelVersion, inputs: list[np.ndarray]) -> list[np.ndarray]:
        try:
            return await self.runner.predict(mv, inputs)
        except TFaaSError:
            raise
        except Exception as exc:
            if hasattr(exc, "status"):
                raise _worker_error(exc) from None
            raise

    @staticmethod
    def _flatten_outputs(outputs: list[np.ndarray], n_rows: int) -> np.ndarray:
        if not outputs:
            raise Unavailable("the model returned no outputs")
        flat = []
        for out in outputs:
            out = np.asarray(out)
            if out.ndim == 0 or out.shape[0] != n_rows:
                raise BadRequest(
                    "the model's output has no batch dimension matching the input rows"
                )
            flat.append(out.reshape(n_rows, -1).astype(np.float32, copy=False))
        return flat[0] if len(flat) == 1 else np.concatenate(flat, axis=1)

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

    async def predict_json(self, body: bytes) -> tuple[str, int, bytes]:
        with self.admit():
            return await self._predict_json(body)

    async def predict_proto(self, body: bytes) -> tuple[str, bytes]:
        with self.admit():
            return await self._predict_proto(body)

    async def predict_image(self, form: Form) -> tuple[str, bytes]:
        with self.admit():
            return await self._predict_image(form)

    async def _predict_json(self, body: bytes) -> tuple[str, int, bytes]:
        request = codecs.decode_json_request(body, max_rows=self.limits.max_rows)
        mv, outputs = await self.predict_rows(
            request.model, request.version, request.values, request.keys
        )
        return mv.name, outputs.shape[0], codecs.encode_json_rows(outputs, request.single_row)

    async def _predict_proto(self, body: bytes) -> tuple[str, bytes]:
        request = codecs.decode_proto_row(body)
        mv, outputs = await self.predict_rows(request.model, None, request.values, request.keys)
        return mv.name, codecs.encode_proto_predictions(outputs[0], mv.labels)

    async def _predict_image(self, form: Form) -> tuple[str, bytes]:
        part = form.files.get("image")
        if part is None:
            raise BadRequest("unable to read image: the request has no file part named 'image'")
        mv = self.resolve(form.text("model"), form.text("version"))
        try:
            return mv.name, await self._image_answer(mv, part)
        except TFaaSError as exc:
            exc.model = mv.name
            raise

    async def _image_answer(self, mv: ModelVersion, part: FilePart) -> bytes:
        signature = await self.signature(mv)
        specs = signature.get("inputs") or []
        if len(specs) != 1:
            raise BadRequest(f"model {mv.name!r} does not take one image input")
        shape = list(specs[0].get("shape") or [])
        channels = mv.params.get("img_channels") or mv.params.get("imgChannels")
        if not channels and len(shape) == 4 and shape[3] in (1, 3):
            channels = shape[3]
        if not channels and len(shape) == 3:  # [None, H, W]: one gray value per pixel
            channels = 1
        channels = int(channels or 3)
        if channels not in (1, 3):
            raise BadRequest(f"model params img_channels must be 1 or 3, not {channels}")
        size = None
        if len(shape) == 4 and shape[1] and shape[2] and shape[1] > 0 and shape[2] > 0:
            size = (int(shape[1]), int(shape[2]))
        elif (len(shape) == 3 and shape[1] and shape[2] and shape[1] > 0 and shape[2] > 0
              and shape[2] % channels == 0):  # rows of W * channels values
            size = (int(shape[1]), int(shape[2]) // channels)
        data = await asyncio.to_thread(part.read_bytes)
        image = await asyncio.to_thread(
            codecs.decode_image, data, channels=channels, size=size,
            max_pixels=self.limits.max_image_pixels,
        )
        if len(shape) == 2:  # a dense model over flattened pixels
            image = image.reshape(1, -1)
        elif len(shape) == 3:
            image = image.reshape(1, image.shape[1], -1)
        outputs = self._flatten_outputs(await self._run(mv, [image]), 1)
        if mv.labels:
            answer: Any = {
                "filename": part.filename,
                "labels": codecs.top_labels(outputs[0], mv.labels),
            }
        else:
            answer = outputs[0]
        return codecs.encode_json(answer)

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
        try:
            worker = await asyncio.wait_for(self.worker.status(start=True), timeout=30)
        except Exception as exc:
            worker = {"state": "unavailable", "error": getattr(exc, "message", str(exc))}
        doc["worker"] = worker
        doc["tensorflow"] = worker.get("tensorflow")
        loaded = worker.get("loaded") or []
        doc["models_loaded"] = [key.split("@", 1)[0] for key in loaded]
        doc["cache"] = {"size": len(loaded), "capacity": worker.get("cache_size")}
        if hasattr(self.runner, "status"):
            doc["batching"] = self.runner.status()
        return doc


class DirectRunner:
    """Sends each request to the worker as it comes (no batching)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    async def predict(self, mv: ModelVersion, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return await self.worker.predict(mv.key, str(mv.model_path), mv.format, mv.params, inputs)
