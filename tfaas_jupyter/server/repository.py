"""The model repository on disk.

Layout::

    model_dir/
      <name>/<version>/     one folder per model, one numbered folder per version
          params.json       the model's parameters (the original TFaaS's file)
          labels.txt        optional, one output label per line
          model.pb | saved_model/ | model.keras
          tfaas.json        what we know of the version: format, signature, uid
        labels.json         version labels of the model: {"stable": 3}
      .versions/<name>      the highest version number <name> ever had (kept when the
                            model is deleted, so a number is never reused)
      .staging/<pid>-<id>/  uploads being written (by server process <pid>)
      .trash/<pid>-<id>/    models and versions being deleted
      .lock                 taken (flock) by a process committing or deleting

Writes are atomic: an upload is written and synced under ``.staging`` and then
renamed into place, a delete renames out of place before removing. A reader never
sees half a model, a crash mid-upload leaves the previous version serving, and
leftovers of an interrupted operation are removed when the repository is opened.

The folder is not trusted: ``.staging`` and ``.trash`` are used only when they are
real folders (a symlink there is removed, never followed), recovery removes only
folders tagged with the pid of a process that is gone (so several servers of one
user share a repository), and every file a version names (``model``, ``labels``)
must be a plain file name inside the version folder.

Several servers may share one folder: a model's folder is looked at (one ``stat``)
before every use of its index entry, so a version another server committed is seen
at once and one it deleted or replaced never answers; a version is known by the
``uid`` of its commit, not by its number alone (:meth:`Repository._entry`). Model
names come checked once, where a request enters; the repository takes them as they are.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import stat
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from ..pids import pid_alive
from .diskspace import repository_writes
from .errors import NotFound, TFaaSError
from .modelfiles import (
    HIGH_WATER,
    LABELS_FILE,
    META_FILE,
    PARAMS_FILE,
    VERSION_LABELS_FILE,
    IndexEntry,
    ModelVersion,
    check_root_mode,
    folder_stamp,
    fsync_dir,
    fsync_tree,
    infer_meta,
    is_flat_model,
    plain_member,
    read_high_water,
    read_labels,
    remove_temporary_files,
    replace_file,
    tree_size,
    version_numbers,
    write_high_water,
)
from .modelfiles import RepositoryRefused as RepositoryRefused  # raised when opening
from .names import MODEL_NAME_PATTERN

log = logging.getLogger(__name__)

#: A model's version labels (label -> version), beside its version folders.
_STAGING = ".staging"
_TRASH = ".trash"
_LOCK = ".lock"
#: A staging or trash folder: ``<pid of the process that made it>-<random hex>``.
_TAGGED = re.compile(r"([0-9]{1,10})-[0-9a-f]{32}")
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)

#: The high-water marks of version numbers, one file per model name ever committed.
_VERSIONS = ".versions"


class Repository:
    """Models and versions on disk, with an in-memory index checked against disk."""

    def __init__(self, root: str | os.PathLike[str], *, group_shared: bool = False) -> None:
        self.root = Path(root).expanduser().absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        check_root_mode(self.root, group_shared=group_shared)
        self._lock = threading.RLock()
        self._index: dict[str, IndexEntry] = {}
        self.recover()

    # -- start-up ---------------------------------------------------------

    def recover(self) -> list[str]:
        """Remove what interrupted uploads and deletes left behind; return what was removed.

        Only folders of ours are touched: ``<pid>-<id>`` folders of processes that are
        gone, never one of a live server sharing the repository, never through a link.
        """
        removed: list[str] = []
        for special in (_STAGING, _TRASH):
            folder = self._special_dir(special, create=False)
            if folder is None:
                continue
            for leftover in os.scandir(folder):
                tagged = _TAGGED.fullmatch(leftover.name)
                if tagged and pid_alive(tagged.group(1)):
                    continue  # a live server's (an untagged entry is nobody's)
                if leftover.is_dir(follow_symlinks=False):
                    shutil.rmtree(leftover.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(leftover.path)
                removed.append(f"{special}/{leftover.name}")
        marks = self._special_dir(_VERSIONS, create=False)
        if marks is not None:
            removed.extend(remove_temporary_files(marks))
        for model_dir in self._model_dirs():
            removed.extend(remove_temporary_files(model_dir))
            if not version_numbers(model_dir):
                # A model folder with no committed version: a crashed first upload
                # (or a delete of the last version) left it; nothing there serves.
                if not any(p for p in model_dir.iterdir() if p.name != HIGH_WATER):
                    self._keep_high_water(model_dir)
                    shutil.rmtree(model_dir, ignore_errors=True)
                    removed.append(model_dir.name)
        if removed:
            log.warning("tfaas: removed leftovers of interrupted operations: %s", removed)
        return removed

    # -- reading ----------------------------------------------------------

    def _model_dirs(self) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for entry in entries:
            # a folder copied in by hand under a name no request could use is not a model
            if not _MODEL_NAME.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
                continue
            yield Path(entry.path)

    def _read_version(self, name: str, version: int, path: Path) -> ModelVersion | None:
        try:
            params_path = path / PARAMS_FILE
            params = (
                json.loads(params_path.read_text(encoding="utf-8"))
                if params_path.is_file()
                else {}
            )
            if not isinstance(params, dict):
                params = {}
            if (path / META_FILE).is_file():
                meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
            else:
                meta = infer_meta(path, params)
        except (OSError, ValueError) as exc:
            log.warning("tfaas: skipping unreadable version %s/%s: %s", name, version, exc)
            return None
        if not isinstance(meta, dict) or "format" not in meta or "model" not in meta:
            log.warning("tfaas: skipping version %s/%s without metadata", name, version)
            return None
        if meta["model"] != "." and plain_member(meta["model"]) is None:
            log.warning("tfaas: skipping version %s/%s: its model %r is not a file name in "
                        "the version folder", name, version, meta["model"])
            return None
        labels_name = meta.get("labels", LABELS_FILE)
        if plain_member(labels_name) is None:
            log.warning("tfaas: version %s/%s: ignoring labels %r (not a file name in the "
                        "version folder)", name, version, labels_name)
            labels = None
        else:
            labels = read_labels(path / labels_name)
        return ModelVersion(
            name=name,
            version=version,
            path=path,
            meta=meta,
            params=params,
            labels=labels,
            signature=meta.get("signature"),
        )

    def _entry(self, name: str) -> IndexEntry:
        """The index entry of ``name``, read anew when its folder changed on disk.

        One ``stat`` of the model's folder per call (every request), so that a server
        sharing the folder with others never answers from a version another one
        deleted or replaced, and sees a version it committed at once. A version read
        before is kept (with what was learnt of it: its signature, a load error) only
        while its folder holds the same commit (``uid``): a number alone does not name
        a version, since a deleted model's folder may be made again.
        """
        entry = self._index.get(name)
        model_dir = self.root / name
        try:
            stamp = folder_stamp(os.stat(model_dir))
        except (FileNotFoundError, NotADirectoryError):
            with self._lock:
                self._index.pop(name, None)
            raise NotFound(f"model {name!r} not found") from None
        if entry is not None and entry.stamp == stamp:
            return entry
        with self._lock:
            versions: dict[int, ModelVersion] = {}
            old = entry.versions if entry else {}
            numbers = version_numbers(model_dir)
            if not numbers and is_flat_model(model_dir):
                # The original TFaaS's layout, copied in: the folder itself is version 1.
                found = self._read_version(name, 1, model_dir)
                if found is not None:
                    versions[1] = found
            for number in numbers:
                known = old.get(number)
                path = model_dir / str(number)
                if known is not None and _holds_commit(path, known):
                    versions[number] = known  # unchanged: not read again
                    continue
                found = self._read_version(name, number, path)
                if found is None:
                    continue
                versions[number] = known if known is not None and known.uid == found.uid \
                    else found
            entry = IndexEntry(stamp, versions)
            self._index[name] = entry
            return entry

    def names(self) -> list[str]:
        """Names of the models that have at least one servable version, sorted."""
        result = []
        for model_dir in self._model_dirs():
            try:
                if self._entry(model_dir.name).versions:
                    result.append(model_dir.name)
            except NotFound:
                continue
        return result

    def versions(self, name: str) -> list[ModelVersion]:
        entry = self._entry(name)
        if not entry.versions:
            raise NotFound(f"model {name!r} not found")
        return [entry.versions[v] for v in sorted(entry.versions)]

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """The given version of a model, or its latest when ``version`` is None."""
        entry = self._entry(name)
        if not entry.versions:
            raise NotFound(f"model {name!r} not found")
        if version is None:
            return entry.versions[max(entry.versions)]
        found = entry.versions.get(version)
        if found is None:
            raise NotFound(
                f"model {name!r} has no version {version}; "
                f"versions: {sorted(entry.versions)}"
            )
        return found

    # -- writing ----------------------------------------------------------

    def _special_dir(self, name: str, *, create: bool = True) -> Path | None:
        """``.staging`` or ``.trash`` as a real folder of ours; anything else there (a
        symlink planted to make us write or delete elsewhere) is removed, not followed."""
        folder = self.root / name
        try:
            st = os.lstat(folder)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            log.warning("tfaas: removing %s: not a folder (a link?)", folder)
            os.unlink(folder)
            st = None
        if st is None:
            if not create:
                return None
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder, 0o700)
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                raise TFaaSError(f"cannot use {folder}: it is not a folder", 409)
        return folder

    def new_staging_dir(self) -> Path:
        """A fresh private folder to write an upload into, on the same filesystem."""
        with repository_writes(self.root, "store an upload"):
            parent = self._special_dir(_STAGING)
            assert parent is not None
            staging = parent / f"{os.getpid()}-{uuid.uuid4().hex}"
            os.mkdir(staging, 0o700)
        return staging

    @contextlib.contextmanager
    def _process_lock(self) -> Iterator[None]:
        """The repository's lock file, so several server processes never commit or
        delete in one model folder at once (threads of this one take ``_lock``)."""
        fd = os.open(self.root / _LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def discard(self, staging: Path) -> None:
        """Remove a staging folder (a blocking call: run it off the event loop)."""
        shutil.rmtree(staging, ignore_errors=True)

    def commit(
        self,
        name: str,
        staging: Path,
        meta: dict[str, Any],
    ) -> ModelVersion:
        """Move a fully written staging folder into place as the next version of ``name``.

        ``meta`` must name the ``format`` and the ``model`` file or folder inside
        ``staging``; ``uid`` and ``created`` are added here.
        """
        meta = dict(meta)
        meta.setdefault("uid", uuid.uuid4().hex)
        meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        meta["name"] = name
        held = tree_size(staging)
        meta.setdefault("size", held)
        # a full disk here: the upload needs its staged files (removed by the caller,
        # so counted as free) plus tfaas.json and the high-water mark
        needed = held + len(json.dumps(meta, indent=1)) + 1024
        with self._lock, repository_writes(self.root, f"store model {name!r}", needed, held), \
                self._process_lock():
            model_dir = self.root / name
            model_dir.mkdir(exist_ok=True)
            floor = 1 if is_flat_model(model_dir) else 0  # a flat model counts as version 1
            version = max([*version_numbers(model_dir), read_high_water(model_dir),
                           self._high_water(name), floor]) + 1
            meta["version"] = version
            (staging / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
            fsync_tree(staging)
            target = model_dir / str(version)
            entry = self._index.get(name)  # still good if only this commit changes the folder
            current = entry is not None and entry.stamp == folder_stamp(os.stat(model_dir))
            self._write_high_water(name, version)  # first: a full disk leaves no version
            os.rename(staging, target)
            fsync_dir(model_dir)
            added = self._read_version(name, version, target) if current else None
            # a flat folder (the original's layout) stops being version 1 once a numbered
            # version sits beside it: the model is read anew
            if entry is None or floor:
                self._index.pop(name, None)
            elif added is not None:  # the index gains the one version this commit adds
                entry.versions[version] = added
                entry.stamp = folder_stamp(os.stat(model_dir))
            # else another process changed the folder too: the entry's stamp is out of
            # date, so the next look reads the versions it does not hold, and only those
        return self.get(name, version)

    def _high_water(self, name: str) -> int:
        """The highest version number ``name`` ever had (0: none), kept outside its
        folder so that deleting the whole model does not forget it."""
        folder = self._special_dir(_VERSIONS, create=False)
        return read_high_water(folder, name) if folder is not None else 0

    def _keep_high_water(self, model_dir: Path) -> None:
        """Carry an older release's mark inside ``model_dir`` over to ``.versions``."""
        with contextlib.suppress(OSError):
            kept = read_high_water(model_dir)
            if kept > self._high_water(model_dir.name):
                self._write_high_water(model_dir.name, kept)

    def _write_high_water(self, name: str, version: int) -> None:
        folder = self._special_dir(_VERSIONS)
        assert folder is not None
        write_high_water(folder, version, name)

    def delete(self, name: str, version: int | None = None) -> list[int]:
        """Delete a model (all versions) or one version; return the deleted version numbers."""
        with self._lock, repository_writes(self.root, f"delete model {name!r}"), \
                self._process_lock():
            self._index.pop(name, None)  # another process may have changed it
            existing = [v.version for v in self.versions(name)]
            trash = self._special_dir(_TRASH)
            assert trash is not None
            doomed = trash / f"{os.getpid()}-{uuid.uuid4().hex}"
            if version is None or existing == [version]:
                if version is not None and version not in existing:
                    raise NotFound(f"model {name!r} has no version {version}")
                os.rename(self.root / name, doomed)
                deleted = existing
            else:
                if version not in existing:
                    raise NotFound(
                        f"model {name!r} has no version {version}; versions: {existing}"
                    )
                os.rename(self.root / name / str(version), doomed)
                deleted = [version]
            fsync_dir(self.root)
            self._index.pop(name, None)
        shutil.rmtree(doomed, ignore_errors=True)
        return deleted

    def remember_signature(self, mv: ModelVersion, signature: dict[str, Any]) -> None:
        """Record a signature learnt from the worker for a version stored without one."""
        mv.signature = signature
        mv.meta["signature"] = signature
        try:
            replace_file(mv.path / META_FILE, json.dumps(mv.meta, indent=1))
        except OSError as exc:  # read-only repository: keep it in memory only
            log.info("tfaas: could not record signature of %s: %s", mv.key, exc)

    # -- version labels ------------------------------------------------------
    # A model's labels (TF Serving's version labels: "stable" -> 3) live in
    # <name>/labels.json beside its version folders, replaced atomically.

    def labels(self, name: str) -> dict[str, int]:
        """The version labels of a model: label -> version number."""
        try:
            doc = json.loads((self.root / name / VERSION_LABELS_FILE).read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("tfaas: ignoring unreadable version labels of %s: %s", name, exc)
            return {}
        if not isinstance(doc, dict):
            return {}
        return {str(k): v for k, v in sorted(doc.items())
                if isinstance(v, int) and not isinstance(v, bool)}

    def _write_labels(self, name: str, labels: dict[str, int]) -> None:
        model_dir = self.root / name
        replace_file(model_dir / VERSION_LABELS_FILE,
                     json.dumps(dict(sorted(labels.items())), indent=1), sync=True)
        fsync_dir(model_dir)
        self._index.pop(name, None)

    def set_label(self, name: str, label: str, version: int) -> dict[str, int]:
        """Point ``label`` at an existing ``version`` (set or move it); answer all labels."""
        with self._lock, repository_writes(self.root, f"label model {name!r}"):
            self.get(name, version)  # a 404 naming the versions when it does not exist
            labels = self.labels(name)
            labels[label] = version
            self._write_labels(name, labels)
        return labels

    def delete_label(self, name: str, label: str) -> dict[str, int]:
        """Remove ``label``; answer the labels left."""
        with self._lock, repository_writes(self.root, f"label model {name!r}"):
            labels = self.labels(name)
            if label not in labels:
                raise NotFound(f"model {name!r} has no version label {label!r}; "
                               f"labels: {sorted(labels)}")
            del labels[label]
            self._write_labels(name, labels)
        return labels

    def resolve(self, name: str, version: int | str | None) -> ModelVersion:
        """A version by number, by label, or the latest (None): the one resolver of every API."""
        if isinstance(version, str):
            labels = self.labels(name)
            if version not in labels:
                self.get(name)  # an unknown model is a 404 naming the model
                raise NotFound(f"model {name!r} has no version label {version!r}; "
                               f"labels: {sorted(labels)}")
            version = labels[version]
        return self.get(name, version)

    def delete_unlabelled(self, name: str, version: int | None) -> list[int]:
        """:meth:`delete`, refusing (409) a version that a label points at."""
        with self._lock:
            if version is not None:
                held = [label for label, v in self.labels(name).items() if v == version]
                if held:
                    raise TFaaSError(
                        f"model {name!r} version {version} has version label(s) "
                        f"{', '.join(held)}: move or delete them first", 409,
                    )
            return self.delete(name, version)


def _holds_commit(path: Path, known: ModelVersion) -> bool:
    """Whether version folder ``path`` still holds the commit ``known`` was read from
    (its ``uid``: one small read), so that a rescan reads only what changed."""
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    uid = known.meta.get("uid")
    return uid is not None and isinstance(meta, dict) and meta.get("uid") == uid
