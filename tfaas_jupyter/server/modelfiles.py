"""One model version on disk: its files, its format, and what the server knows of it.

The formats the worker loads, the files a version folder holds, the committed
version as read from disk (:class:`ModelVersion`), and what a version folder without
our ``tfaas.json`` holds (:func:`infer_meta`: one copied in by hand, or a model
folder of the original TFaaS), and whether a folder may be served at all
(:func:`check_root_mode`). The repository (:mod:`~tfaas_jupyter.server.repository`)
keeps the folders and their index.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..pids import pid_alive
from .modelref import ModelRef

#: The model formats the worker loads.
GRAPHDEF, SAVEDMODEL, KERAS, ONNX = "graphdef", "savedmodel", "keras", "onnx"
META_FILE = "tfaas.json"
#: A model's version labels (``{"stable": 3}``), in its folder.
VERSION_LABELS_FILE = "labels.json"
PARAMS_FILE = "params.json"
LABELS_FILE = "labels.txt"
#: The highest version number a model ever had, beside its version folders.
HIGH_WATER = ".last_version"


def plain_member(value: object) -> str | None:
    """``value`` if it is a plain file name inside a folder (no ``/``, not ``..``)."""
    if not isinstance(value, str) or not value or value in (".", ".."):
        return None
    if "/" in value or "\\" in value or "\0" in value:
        return None
    return value


@dataclass
class ModelVersion:
    """One committed version of a model, as read from disk."""

    name: str
    version: int
    path: Path
    meta: dict[str, Any]
    params: dict[str, Any]
    labels: list[str] | None = None
    signature: dict[str, Any] | None = field(default=None)
    #: Why the worker could not load this version, once it tried (None: no failure seen).
    load_error: str | None = None

    @property
    def format(self) -> str:
        return str(self.meta["format"])

    @property
    def model_path(self) -> Path:
        return self.path / str(self.meta["model"])

    @property
    def uid(self) -> str:
        return str(self.meta["uid"])

    @property
    def key(self) -> str:
        """The worker's cache key: unique for this version's content, prefixed by the name."""
        return f"{self.name}@{self.uid}"

    @functools.cached_property
    def ref(self) -> ModelRef:
        """This version as the model worker knows it (made once: every prediction
        names its model by it)."""
        return ModelRef.of(self)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary of this version (with its ``load_error`` once a load failed)."""
        doc = {
            "version": self.version,
            "format": self.format,
            "created": self.meta.get("created"),
            "size": self.meta.get("size"),
            "inputs": (self.signature or {}).get("inputs"),
            "outputs": (self.signature or {}).get("outputs"),
            "labels": self.labels,
        }
        if self.load_error is not None:
            doc["load_error"] = self.load_error
        return doc


def read_labels(path: Path) -> list[str] | None:
    """The labels file's non-empty lines (a symlink or anything but a file: none)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        text = fh.read().decode("utf-8", errors="replace")
    labels = [line.strip() for line in text.splitlines()]
    return [label for label in labels if label] or None


def is_flat_model(folder: Path) -> bool:
    """A model folder of the original TFaaS: params.json (or a SavedModel) right in it."""
    return (folder / PARAMS_FILE).is_file() or (folder / "saved_model.pb").is_file()


def infer_meta(path: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """What a version folder without tfaas.json holds: one copied in by hand, or a
    model folder of the original TFaaS. None when no model is found.

    The uid is derived from the model file's size and time, so a model replaced in
    place is a new model for the worker's cache.
    """
    onnx_files = sorted(path.glob("*.onnx"))
    if (path / "saved_model.pb").is_file():
        fmt, model = SAVEDMODEL, "."
    elif len(onnx_files) == 1:  # converted beside it into saved_model/ on first load
        fmt, model = ONNX, onnx_files[0].name
    elif (path / "saved_model" / "saved_model.pb").is_file():
        fmt, model = SAVEDMODEL, "saved_model"
    else:
        keras_files = sorted(path.glob("*.keras"))
        named = params.get("model")
        if len(keras_files) == 1:
            fmt, model = KERAS, keras_files[0].name
        elif isinstance(named, str) and named and Path(named).name == named and (
            path / named
        ).is_file():
            fmt, model = GRAPHDEF, named
        else:
            return None
    probe = path / model / "saved_model.pb" if fmt == SAVEDMODEL else path / model
    st = probe.stat()
    stamp = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()
    return {
        "format": fmt,
        "model": model,
        "labels": plain_member(params.get("labels")) or LABELS_FILE,
        "uid": hashlib.sha256(stamp).hexdigest()[:32],
        "created": time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)
        ),
        "inferred": True,
    }


def tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for fname in files:
            try:
                total += os.lstat(os.path.join(dirpath, fname)).st_size
            except OSError:
                pass
    return total


def fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` to disk (before a rename commits it)."""
    for dirpath, _dirs, files in os.walk(root):
        for fname in files:
            with open(os.path.join(dirpath, fname), "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(dirpath))


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk (after a rename into or out of it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_high_water(folder: Path, file: str = HIGH_WATER) -> int:
    """The version number kept in ``folder/file`` (0: none)."""
    try:
        return int((folder / file).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def write_high_water(folder: Path, version: int, file: str = HIGH_WATER) -> None:
    """Version numbers are never reused, so a client's "version 3" always means one model."""
    replace_file(folder / file, str(version), sync=True)


#: A file being replaced: ``<name>.<pid of the writer>-<random hex>.tmp`` beside it.
TEMPORARY = re.compile(r".+\.([0-9]{1,10})-[0-9a-f]{32}\.tmp")


def replace_file(path: Path, text: str, *, sync: bool = False) -> None:
    """Replace ``path`` with ``text`` atomically: written to a temporary file beside it
    (named for :data:`TEMPORARY`, so that recovery knows whose it is), then renamed
    over it. A failed write (a full disk) removes the temporary file: none is left."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class RepositoryRefused(Exception):
    """The model folder may not be served (e.g. others may write into it)."""


def check_root_mode(root: Path, *, group_shared: bool) -> None:
    """Refuse a repository others may write into: they would choose the code it runs."""
    mode = stat.S_IMODE(os.stat(root).st_mode)
    if mode & stat.S_IWOTH or (mode & stat.S_IWGRP and not group_shared):
        who = "anyone" if mode & stat.S_IWOTH else "its group"
        allow = "" if mode & stat.S_IWOTH else (
            "; set TFaaSApp.group_shared_model_dir=True to serve a group-shared folder"
        )
        raise RepositoryRefused(
            f"refusing the model repository {root}: {who} may write into it "
            f"(mode {mode:04o}), and an uploaded model runs as this server's user; "
            f"chmod go-w it{allow}"
        )


def version_numbers(model_dir: Path) -> list[int]:
    """The numbers of ``model_dir``'s version folders, in order (links not followed)."""
    versions = []
    try:
        for entry in os.scandir(model_dir):
            if entry.name.isdigit() and entry.is_dir(follow_symlinks=False):
                versions.append(int(entry.name))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(versions)


#: What a model folder's ``stat`` says of its contents: a folder re-created under
#: the same name (another inode, or a later change time) or a version added, removed
#: or replaced in it (a rename into or out of it) gives another stamp.
FolderStamp = tuple[int, int, int, int]


def folder_stamp(st: os.stat_result) -> FolderStamp:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


@dataclass
class IndexEntry:
    """A model as the repository's index holds it: its folder's stamp when read, and
    the versions read then."""

    stamp: FolderStamp
    versions: dict[int, ModelVersion]


def remove_temporary_files(model_dir: Path) -> list[str]:
    """The temporary files of replacements that never finished (``labels.json``,
    ``tfaas.json``, the high-water mark) in a model folder and its version folders:
    those of processes that are gone, and the untagged ones earlier releases wrote."""
    removed = []
    ours = {f"{name}.tmp" for name in (VERSION_LABELS_FILE, META_FILE, HIGH_WATER)}
    for folder in (model_dir, *[p for p in model_dir.iterdir()
                                if p.name.isdigit() and p.is_dir() and not p.is_symlink()]):
        for tmp in folder.glob("*.tmp"):
            tagged = TEMPORARY.fullmatch(tmp.name)
            if tagged is None and tmp.name not in ours:
                continue  # not a file of ours (a model's own)
            if (tagged and pid_alive(tagged.group(1))) or tmp.is_symlink() or not tmp.is_file():
                continue
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(str(tmp.relative_to(model_dir.parent)))
    return removed
