"""Safe extraction of uploaded archives (tar, tar.gz, zip).

Every member is checked before a byte is written: no absolute paths, no ``..``,
no links, devices or fifos, a bounded number of members and a bounded total
size, counted on the bytes actually written so a lying header cannot pass.
"""

from __future__ import annotations

import gzip
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import BadRequest, PayloadTooLarge

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
MAX_MEMBERS = 10_000
_CHUNK = 1 << 20


def sniff(head: bytes) -> str:
    """Name the container format of a file from its first bytes: gzip, zip, tar or raw."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZIP_MAGIC) or head.startswith(b"PK\x05\x06"):
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return "raw"


def _safe_member_path(name: str) -> PurePosixPath | None:
    """The relative path a member may be written to; None for the archive root itself."""
    if "\x00" in name:
        raise BadRequest("archive member name contains a NUL byte")
    normalised = name.replace("\\", "/")
    path = PurePosixPath(normalised)
    if path.is_absolute() or normalised.startswith("/") or (
        len(normalised) > 1 and normalised[1] == ":"
    ):
        raise BadRequest(f"archive member {name!r} has an absolute path")
    parts = [p for p in path.parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise BadRequest(f"archive member {name!r} escapes the archive ('..')")
    if not parts:
        return None
    return PurePosixPath(*parts)


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise PayloadTooLarge(
                f"archive expands to more than the limit of {self.limit} bytes"
            )


def _copy(src: BinaryIO, dest: Path, budget: _Budget) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "xb") as out:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            budget.take(len(chunk))
            out.write(chunk)


def extract(archive: Path, target: Path, *, max_size: int) -> None:
    """Extract ``archive`` (tar, tar.gz or zip) into the empty folder ``target``.

    Raises :class:`BadRequest` for an unsafe or unreadable archive and
    :class:`PayloadTooLarge` when it expands beyond ``max_size`` bytes.
    """
    with open(archive, "rb") as fh:
        kind = sniff(fh.read(512))
    budget = _Budget(max_size)
    try:
        if kind == "zip":
            _extract_zip(archive, target, budget)
        elif kind in ("gzip", "tar"):
            _extract_tar(archive, target, budget)
        else:
            raise BadRequest("not an archive: expected a .tar, .tar.gz or .zip file")
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib_error()) as exc:
        raise BadRequest(f"unreadable archive: {exc}") from None


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


def _extract_tar(archive: Path, target: Path, budget: _Budget) -> None:
    with tarfile.open(archive, mode="r:*") as tar:
        count = 0
        for member in tar:
            count += 1
            if count > MAX_MEMBERS:
                raise BadRequest(f"archive has more than {MAX_MEMBERS} members")
            rel = _safe_member_path(member.name)
            if member.issym() or member.islnk():
                raise BadRequest(f"archive member {member.name!r} is a link; links are refused")
            if member.isdir():
                if rel is not None:
                    (target / rel).mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                raise BadRequest(
                    f"archive member {member.name!r} is not a regular file or folder"
                )
            if rel is None:
                raise BadRequest(f"archive member {member.name!r} has no name")
            src = tar.extractfile(member)
            if src is None:
                raise BadRequest(f"archive member {member.name!r} cannot be read")
            try:
                _copy(src, target / rel, budget)
            except FileExistsError:
                raise BadRequest(f"archive member {member.name!r} appears twice") from None


def _extract_zip(archive: Path, target: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise BadRequest(f"archive has more than {MAX_MEMBERS} members")
        for info in infos:
            rel = _safe_member_path(info.filename)
            mode = (info.external_attr >> 16) & 0xFFFF
            if mode and stat.S_ISLNK(mode):
                raise BadRequest(f"archive member {info.filename!r} is a link; links are refused")
            # Only permission bits (Python's ZipFile.writestr, many Windows tools): a file.
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise BadRequest(
                    f"archive member {info.filename!r} is not a regular file or folder"
                )
            if info.is_dir():
                if rel is not None:
                    (target / rel).mkdir(parents=True, exist_ok=True)
                continue
            if rel is None:
                raise BadRequest(f"archive member {info.filename!r} has no name")
            with zf.open(info) as src:
                try:
                    _copy(src, target / rel, budget)
                except FileExistsError:
                    raise BadRequest(
                        f"archive member {info.filename!r} appears twice"
                    ) from None


def gunzip_to(src: BinaryIO, dest: Path, *, max_size: int) -> None:
    """Decompress a gzip stream into ``dest``, refusing more than ``max_size`` bytes."""
    budget = _Budget(max_size)
    try:
        with gzip.GzipFile(fileobj=src) as gz:
            _copy(gz, dest, budget)  # type: ignore[arg-type]
    except (gzip.BadGzipFile, EOFError, OSError) as exc:
        if isinstance(exc, (FileExistsError, PermissionError)):
            raise
        raise BadRequest(f"unreadable gzip body: {exc}") from None


def is_keras_zip(path: Path) -> bool:
    """A ``.keras`` file is a zip holding ``config.json`` and ``metadata.json`` at its root."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return "config.json" in names and "metadata.json" in names


__all__ = ["extract", "gunzip_to", "is_keras_zip", "sniff"]
