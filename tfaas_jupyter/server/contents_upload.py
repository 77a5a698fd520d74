"""An upload from the server's own disk: a model file or SavedModel folder of the
Jupyter contents (what the file browser shows), served without a round trip through
the browser.

The path is the contents' API path, relative to the contents manager's ``root_dir``;
it must stay inside that folder once symlinks are resolved, and name no hidden file
or folder unless the contents manager allows hidden files. The model is copied into
the upload's staging folder (a folder as an uncompressed tar) and then goes through
the same form upload as any other: same checks, same validation in the worker.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path, PurePosixPath

from .errors import BadRequest, NotFound, PayloadTooLarge
from .multipart import FilePart, Form


def contents_path(root_dir: str | Path, api_path: str, *, allow_hidden: bool) -> Path:
    """The file or folder ``api_path`` names under ``root_dir``, refusing any escape."""
    parts = PurePosixPath(api_path.strip("/")).parts
    if not parts or any(part in ("..", ".") for part in parts):
        raise BadRequest(f"not a path inside the server's contents: {api_path!r}")
    if not allow_hidden and any(part.startswith(".") for part in parts):
        raise NotFound(f"no file {api_path!r} in the server's contents")
    root = Path(root_dir).resolve()
    target = root.joinpath(*parts).resolve()
    try:
        target.relative_to(root)
    except ValueError:
        raise NotFound(f"no file {api_path!r} in the server's contents") from None
    if not target.exists():
        raise NotFound(f"no file {api_path!r} in the server's contents")
    return target


def _tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def contents_form(source: Path, name: str, staging: Path, *, max_size: int) -> Form:
    """The upload form of ``source`` (a file, or a folder as a tar), copied into
    ``staging``; more than ``max_size`` bytes is refused as an upload of that size is."""
    size = _tree_size(source) if source.is_dir() else source.stat().st_size
    if size > max_size:
        raise PayloadTooLarge(f"{source.name} has {size} bytes, over the upload limit "
                              f"of {max_size} bytes")
    part = staging / "part-model"
    if source.is_dir():
        if not (source / "saved_model.pb").is_file():
            raise BadRequest(f"{source.name!r} is a folder without saved_model.pb")
        with tarfile.open(part, "w") as tar:
            # no symlink leads out of the folder: only its regular files and folders
            tar.add(source, arcname=source.name, recursive=True,
                    filter=lambda info: info if info.isfile() or info.isdir() else None)
        filename = f"{source.name}.tar"
    else:
        shutil.copyfile(source, part)
        filename = source.name
    return Form(fields={"name": name}, files={"model": FilePart(filename=filename, path=part)})
