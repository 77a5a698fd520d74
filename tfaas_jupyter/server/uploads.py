"""Turn an upload (the original's form, a single archive, or a tarball bundle) into
a staged model version: files laid out in a staging folder, format detected.

Nothing here talks to TensorFlow: the staged model is validated by the model
worker before the repository commits it (:class:`Uploads`, the upload service).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import archives
from .batchparams import check_batching_params
from .diskspace import DiskFull, disk_full_error, is_disk_full
from .errors import BadRequest, ErrorKind, WorkerError
from .keys import Grant, check_model_access
from .modelfiles import (
    GRAPHDEF,
    KERAS,
    LABELS_FILE,
    ONNX,
    PARAMS_FILE,
    SAVEDMODEL,
    ModelVersion,
    tree_size,
)
from .modelref import ModelRef
from .multipart import Form
from .names import check_model_name
from .service import TFaaS
from .timing import Stages
from .unpack import PartWriter


@dataclass
class StagedUpload:
    """A model written to a staging folder, ready to be validated and committed."""

    name: str
    staging: Path
    format: str
    model: str  # file or folder inside ``staging``
    params: dict[str, Any]
    has_labels: bool
    renamed_from: str | None = None  # the name params.json gave, when the upload's differs

    @property
    def model_path(self) -> Path:
        return self.staging / self.model

    def meta(self) -> dict[str, Any]:
        return {"format": self.format, "model": self.model, "labels": LABELS_FILE}


def parse_params(raw: bytes | str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not raw.strip():
        return {}
    try:
        params = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"params is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise BadRequest("params must be a JSON object")
    return params


def stage_form(form: Form, staging: Path, *, max_extracted: int) -> StagedUpload:
    """Lay out a form upload (fields name, params, model, labels) in ``staging``; its
    parts are already files there (a base64 model decoded on the way, a tar or tar.gz
    unpacked: this waits for the unpacking, a blocking call)."""
    params = parse_params(form.text("params"))
    name = form.text("name")
    if name is None or not name.strip():
        name = params.get("name") if isinstance(params.get("name"), str) else None
    if not name:
        raise BadRequest("request does not provide name")
    name = check_model_name(name.strip())
    model_part = form.files.get("model")
    if model_part is None:
        raise BadRequest("request does not provide model (a file part named 'model')")
    labels_text = form.text("labels")
    writer = model_part.writer
    if writer is not None and writer.unpacked is not None:  # unpacked as it arrived
        writer.wait()
        return _stage_from_folder(name, writer.extracted(), params, labels_text, staging)
    if model_part.size() == 0:
        raise BadRequest("the model part is empty")
    if model_part.path is None:  # held in memory: write it out like a spooled part
        model_part.path = staging / "part-model"
        model_part.path.write_bytes(model_part.read_bytes())
        model_part.data = None
    kind = writer.kind if writer is not None and writer.kind is not None else None
    return _stage_model_file(
        name, model_part.path, model_part.filename, kind, params, labels_text, staging,
        max_extracted=max_extracted,
    )


def stage_bundle(body: PartWriter, staging: Path, *, max_extracted: int) -> StagedUpload:
    """Lay out the original's bundle upload: a tarball whose top folder is the model name
    (unpacked as it arrived; a zip is extracted here). A blocking call."""
    body.wait()
    if body.unpacked is not None:
        extracted = body.extracted()
    else:
        extracted = staging / "bundle"
        extracted.mkdir()
        archives.extract(body.path, extracted, max_size=max_extracted, kind=body.kind)
    top = [p for p in extracted.iterdir()]
    if len(top) != 1 or not top[0].is_dir():
        raise BadRequest(
            "a bundle must hold exactly one top-level folder, named after the model"
        )
    name = check_model_name(top[0].name)
    params = {}
    if (top[0] / PARAMS_FILE).is_file():
        params = parse_params((top[0] / PARAMS_FILE).read_bytes())
    return _stage_from_folder(name, top[0], params, None, staging)


def _stage_model_file(
    name: str,
    model_file: Path,
    filename: str,
    kind: str | None,
    params: dict[str, Any],
    labels_text: str | None,
    staging: Path,
    *,
    max_extracted: int,
) -> StagedUpload:
    """Stage a model sent as one file; ``kind``: its container format
    (:func:`archives.sniff`), as the form stream saw it go by (None: it did not)."""
    with open(model_file, "rb") as fh:
        head = fh.read(512)
    if kind is None:
        kind = archives.sniff(head)
    if kind == "raw" and (filename.lower().endswith(".onnx") or _looks_like_onnx(head)):
        shutil.move(str(model_file), staging / "model.onnx")
        return _finish(name, staging, ONNX, "model.onnx", params, labels_text)
    if kind == "zip" and archives.is_keras_zip(model_file):
        shutil.move(str(model_file), staging / "model.keras")
        return _finish(name, staging, KERAS, "model.keras", params, labels_text)
    if kind in ("zip", "gzip", "tar"):
        extracted = staging / "archive"
        extracted.mkdir()
        archives.extract(model_file, extracted, max_size=max_extracted, kind=kind)
        os.unlink(model_file)
        return _stage_from_folder(name, extracted, params, labels_text, staging)
    shutil.move(str(model_file), staging / "model.pb")
    return _finish(name, staging, GRAPHDEF, "model.pb", params, labels_text)


def _looks_like_onnx(head: bytes) -> bool:
    """An ONNX ModelProto: field 1 (ir_version, a small varint) first, then one of the
    fields a model starts with (producer, domain, graph, opset_import). A frozen GraphDef
    starts with its nodes (field 1, length-delimited: 0x0a) instead."""
    return len(head) >= 3 and head[0] == 0x08 and head[1] < 0x80 and head[2] in (
        0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A, 0x42
    )


def _find_one(root: Path, pattern: str, max_depth: int = 3) -> list[Path]:
    found = []
    for path in root.rglob(pattern):
        if len(path.relative_to(root).parts) <= max_depth:
            found.append(path)
    return sorted(found)


def _stage_from_folder(
    name: str,
    folder: Path,
    params: dict[str, Any],
    labels_text: str | None,
    staging: Path,
) -> StagedUpload:
    """Find the model in an extracted archive: a SavedModel, a .keras file or a frozen graph."""
    saved = _find_one(folder, "saved_model.pb")
    if len(saved) > 1:
        raise BadRequest("the archive holds more than one SavedModel (saved_model.pb)")
    if saved:
        home = saved[0].parent
        params, labels_text = _side_files(home, folder, params, labels_text)
        shutil.move(str(home), staging / "saved_model")
        return _finish(name, staging, SAVEDMODEL, "saved_model", params, labels_text)
    for pattern, fmt, stored in (("*.keras", KERAS, "model.keras"),
                                 ("*.onnx", ONNX, "model.onnx")):
        found = _find_one(folder, pattern)
        if len(found) == 1:  # a model in one file
            params, labels_text = _side_files(found[0].parent, folder, params, labels_text)
            shutil.move(str(found[0]), staging / stored)
            return _finish(name, staging, fmt, stored, params, labels_text)
    params_files = _find_one(folder, PARAMS_FILE)
    if not params and len(params_files) == 1:
        params = parse_params(params_files[0].read_bytes())
    graph_name = params.get("model")
    if isinstance(graph_name, str) and graph_name:
        candidates = _find_one(folder, Path(graph_name).name)
        if len(candidates) == 1 and candidates[0].is_file():
            home = candidates[0].parent
            params, labels_text = _side_files(home, folder, params, labels_text)
            shutil.move(str(candidates[0]), staging / "model.pb")
            return _finish(name, staging, GRAPHDEF, "model.pb", params, labels_text)
    raise BadRequest(
        "the archive holds no model: expected a SavedModel folder (saved_model.pb), "
        "a .keras file, an .onnx file, or a frozen graph named by params.json 'model'"
    )


def _side_files(
    home: Path, root: Path, params: dict[str, Any], labels_text: str | None
) -> tuple[dict[str, Any], str | None]:
    """params.json and labels.txt shipped inside the archive, unless sent as form parts."""
    for where in (home, root):
        if not params and (where / PARAMS_FILE).is_file():
            params = parse_params((where / PARAMS_FILE).read_bytes())
        if labels_text is None and (where / LABELS_FILE).is_file():
            labels_text = (where / LABELS_FILE).read_text(encoding="utf-8", errors="replace")
    return params, labels_text


def _finish(
    name: str,
    staging: Path,
    fmt: str,
    model: str,
    params: dict[str, Any],
    labels_text: str | None,
) -> StagedUpload:
    # The upload's name (the form's field, a bundle's folder) wins over params.json's:
    # a model uploaded under a new name is stored under it, and its params.json says so.
    renamed_from = params.get("name") if params.get("name") != name else None
    params = dict(params)
    params["name"] = name
    params.setdefault("model", model)
    has_labels = bool(labels_text and labels_text.strip())
    if has_labels:
        (staging / LABELS_FILE).write_text(labels_text or "", encoding="utf-8")
        params.setdefault("labels", LABELS_FILE)
    (staging / PARAMS_FILE).write_text(json.dumps(params, indent=1), encoding="utf-8")
    for leftover in ("archive", "bundle"):
        shutil.rmtree(staging / leftover, ignore_errors=True)
    for part in staging.glob("part*-*"):  # the other parts, and what an archive held besides
        if part.is_dir() and not part.is_symlink():
            shutil.rmtree(part)
        else:
            part.unlink()
    (staging / "request.body").unlink(missing_ok=True)
    shutil.rmtree(staging / "request.body.d", ignore_errors=True)
    return StagedUpload(name, staging, fmt, model, params, has_labels,
                        None if renamed_from is None else str(renamed_from))


class Uploads:
    """The upload service: stage an upload, have the model worker load it, and commit
    it to the repository only if TensorFlow can serve it."""

    def __init__(self, core: TFaaS) -> None:
        self.core = core

    async def upload_form(self, form: Form, staging: Path, *, grant: Grant | None = None,
                          stages: Stages | None = None) -> dict[str, Any]:
        with self._disk_full_as_507(staging):
            staged = await asyncio.to_thread(
                stage_form, form, staging, max_extracted=self.core.limits.max_extracted_size
            )
        mv = await self._validate_and_commit(staged, grant, stages)
        self.core.default_model = mv.name
        return self._with_warmup(self._upload_answer(mv, staged.renamed_from), mv)

    async def upload_bundle(self, body: PartWriter, staging: Path, *,
                            grant: Grant | None = None,
                            stages: Stages | None = None) -> dict[str, Any]:
        with self._disk_full_as_507(staging):
            staged = await asyncio.to_thread(
                stage_bundle, body, staging, max_extracted=self.core.limits.max_extracted_size
            )
        mv = await self._validate_and_commit(staged, grant, stages)
        return self._with_warmup(self._upload_answer(mv, staged.renamed_from), mv)

    def _with_warmup(self, answer: dict[str, Any], mv: ModelVersion) -> dict[str, Any]:
        """The answer with the seconds of the version's warm-up (None: none ran)."""
        answer["warmup_seconds"] = self.core.worker.warmup_seconds(mv.key)
        return answer

    @contextlib.contextmanager
    def _disk_full_as_507(self, staging: Path) -> Iterator[None]:
        """A full disk while the upload is unpacked into ``staging``: its 507."""
        try:
            yield
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise self.unpacking_disk_full(staging) from None

    def unpacking_disk_full(self, staging: Path) -> DiskFull:
        """The 507 of an upload whose unpacking into ``staging`` found the disk full: it
        needs more than it held then, and the free space is what remains once that is
        removed. (A blocking call: it walks ``staging``.)"""
        held = tree_size(staging)
        return disk_full_error(self.core.repository.root, "unpack the upload",
                               needed=held, freed=held, at_least=True)

    @staticmethod
    def _upload_answer(mv: ModelVersion, renamed_from: str | None = None) -> dict[str, Any]:
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

    async def _validate_and_commit(self, staged: StagedUpload, grant: Grant | None,
                                   stages: Stages | None) -> ModelVersion:
        """Load the staged model in the worker; commit it only if TensorFlow can serve it
        (the load's cold start goes to ``stages``, when given)."""
        check_model_access(grant, staged.name)
        check_batching_params(staged.params)
        if staged.format == KERAS:  # the worker inflates it: bounded like an archive
            await asyncio.to_thread(archives.check_zip_expansion, staged.model_path,
                                    self.core.limits.max_extracted_size)
        meta = staged.meta()
        meta["uid"] = uid = uuid.uuid4().hex
        ref = ModelRef(key=f"{staged.name}@{uid}", path=str(staged.model_path),
                       format=staged.format, params=staged.params, name=staged.name)
        try:
            signature, cold = await self.core.worker.loaded(ref)
        except WorkerError as exc:
            # the upload is at fault
            if exc.kind in (ErrorKind.BAD_INPUT, ErrorKind.MODEL, ErrorKind.LOAD):
                raise BadRequest(f"unreadable model: {exc.message}") from None
            raise
        if stages is not None and cold is not None:
            stages.cold_start = cold
        meta["signature"] = signature
        mv = await asyncio.to_thread(self.core.repository.commit, staged.name,
                                     staged.staging, meta)
        self.core.worker.loaded_versions.moved(mv.ref)  # reloaded from where it lives now
        return mv
