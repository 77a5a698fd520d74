"""Safe extraction of uploaded archives (tar, tar.gz, zip).

Every member is checked before a byte is written: no absolute paths, no ``..``,
no links, devices or fifos, a bounded number of members and a bounded total
size, counted on the bytes actually written so a lying header cannot pass.
"""

from __future__ import annotations

import gzip
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

from .errors import BadRequest, PayloadTooLarge

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
MAX_MEMBERS = 10_000
#: Largest tar metadata record (pax header, GNU long name) read into memory.
MAX_TAR_METADATA = 1 << 20
_CHUNK = 1 << 20
_TAR_BLOCK = 512
#: tar types whose data is metadata that tarfile reads whole: pax, GNU long names.
_TAR_METADATA_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                       tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


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
                f"archive expands to more than the limit of {self.limit} bytes "
                "(max_extracted_size)"
            )


def _copy(src: IO[bytes], dest: Path, budget: _Budget) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "xb") as out:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            budget.take(len(chunk))
            out.write(chunk)


def extract(archive: Path, target: Path, *, max_size: int, kind: str | None = None) -> None:
    """Extract ``archive`` (tar, tar.gz or zip) into the empty folder ``target``;
    ``kind``: its :func:`sniff` when the caller knows it already.

    Raises :class:`BadRequest` for an unsafe or unreadable archive and
    :class:`PayloadTooLarge` when it expands beyond ``max_size`` bytes.
    """
    if kind is None:
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
    except UNREADABLE as exc:
        raise unreadable(exc) from None


def unreadable(exc: BaseException) -> BadRequest:
    """The 400 of an archive its reader could not read (one of :data:`UNREADABLE`)."""
    return BadRequest(f"unreadable archive: {exc}")


#: What the archive readers raise on a damaged or truncated archive.
UNREADABLE = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error)


def _tar_size(field: bytes) -> int:
    """A tar header's size field: octal text, or base-256 (GNU) for big sizes."""
    if field[:1] in (b"\x80", b"\xff"):
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise BadRequest("unreadable archive: a tar header has an invalid size") from None


class TarHeaderCheck:
    """Watches a tar's bytes go by (:meth:`feed`, through gzip when compressed) and
    refuses, before tarfile reads any, a metadata record over :data:`MAX_TAR_METADATA`
    bytes or too many members: tarfile would hold each such record in memory whole."""

    def __init__(self) -> None:
        self._offset = 0  # bytes seen
        self._next_header = 0  # where the next header starts
        self._pending = bytearray()  # the start of a header split across two feeds
        self._headers = 0
        self.ended = False  # the end-of-archive block went by

    def feed(self, data: bytes | memoryview) -> None:
        start = self._offset
        self._offset += len(data)
        while not self.ended and self._next_header + len(self._pending) < self._offset:
            at = self._next_header + len(self._pending) - start
            self._pending += data[at:at + _TAR_BLOCK - len(self._pending)]
            if len(self._pending) < _TAR_BLOCK:
                return
            header, self._pending = bytes(self._pending), bytearray()
            self._header(header)

    def _header(self, header: bytes) -> None:
        if header == b"\0" * _TAR_BLOCK:
            self.ended = True
            return
        self._headers += 1
        if self._headers > 2 * MAX_MEMBERS + 2:
            raise BadRequest(f"archive has more than {MAX_MEMBERS} members")
        size = _tar_size(header[124:136])
        if header[156:157] in _TAR_METADATA_TYPES and size > MAX_TAR_METADATA:
            raise BadRequest(
                f"archive has a tar metadata record of {size} bytes "
                f"(the limit is {MAX_TAR_METADATA})"
            )
        self._next_header += _TAR_BLOCK + -(-size // _TAR_BLOCK) * _TAR_BLOCK


class CheckedTar:
    """A tar's reader (``read``) whose bytes pass a :class:`TarHeaderCheck` on their way
    to tarfile."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self._check = TarHeaderCheck()

    def read(self, size: int = -1) -> bytes:
        data = self._src.read(size)
        self._check.feed(data)
        return data


def check_tar_metadata(archive: Path) -> None:
    """Walk the tar headers of a file (see :class:`TarHeaderCheck`) before tarfile opens it."""
    with open(archive, "rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
    opener = gzip.open if gzipped else open
    with opener(archive, "rb") as fh:
        check = TarHeaderCheck()
        while not check.ended:
            data = fh.read(_CHUNK)
            if not data:
                return  # truncated: tarfile says so
            check.feed(data)


def check_zip_directory(archive: Path) -> None:
    """Read the member count from the zip's end record and refuse more than
    :data:`MAX_MEMBERS` before zipfile parses (and holds) the whole central directory."""
    with open(archive, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - (1 << 16) - 22))
        tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return  # zipfile reports the archive as unreadable
    entries, directory_size = struct.unpack("<H4xI", tail[at + 10 : at + 20])
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:  # zip64: the real figures elsewhere
        locator = tail.rfind(b"PK\x06\x07", 0, at)
        if locator >= 0:
            (offset,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
            with open(archive, "rb") as fh:
                fh.seek(offset)
                record = fh.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) == 56:
                entries, directory_size = struct.unpack("<Q8xQ", record[32:56])[0], 0
    if entries > MAX_MEMBERS:
        raise BadRequest(f"archive has more than {MAX_MEMBERS} members")
    if directory_size > MAX_MEMBERS * (46 + 2 * 65535):
        raise BadRequest("archive has an oversized zip central directory")


def _extract_tar(archive: Path, target: Path, budget: _Budget) -> None:
    check_tar_metadata(archive)
    with tarfile.open(archive, mode="r:*") as tar:
        extract_tar_members(tar, target, budget)


def extract_tar_stream(src: BinaryIO, target: Path, *, max_size: int) -> None:
    """Extract a tar read once, in order, from the stream ``src`` (already decompressed)
    into ``target``: its headers checked as they pass (:class:`CheckedTar`), each member
    as for a file on disk, at most ``max_size`` bytes written. Raises one of
    :data:`UNREADABLE` for a damaged archive (the caller turns it into a 400)."""
    checked: Any = CheckedTar(src)
    with tarfile.open(fileobj=checked, mode="r|") as tar:
        extract_tar_members(tar, target, _Budget(max_size))


def extract_tar_members(tar: tarfile.TarFile, target: Path, budget: _Budget) -> None:
    """Write the members of ``tar`` (opened from a file, or a stream read once, in
    order) into ``target``, each checked before a byte of it is written."""
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


def check_zip_expansion(archive: Path, max_size: int) -> None:
    """Refuse (413, naming ``max_extracted_size``) a zip whose central directory says it
    expands beyond ``max_size`` bytes, before a byte is inflated: zipfile never inflates
    a member beyond the size its directory gives, so that sum bounds the output (a
    ``.keras`` file the worker would open, a SavedModel zip we would extract)."""
    check_zip_directory(archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            total = sum(info.file_size for info in zf.infolist())
    except zipfile.BadZipFile as exc:
        raise BadRequest(f"unreadable archive: {exc}") from None
    if total > max_size:
        raise PayloadTooLarge(
            f"archive expands to {total} bytes, more than the limit of {max_size} bytes "
            "(max_extracted_size)"
        )


def _extract_zip(archive: Path, target: Path, budget: _Budget) -> None:
    check_zip_expansion(archive, budget.limit)
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
        check_zip_directory(path)
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, BadRequest):  # extract() says what is wrong
        return False
    return "config.json" in names and "metadata.json" in names


__all__ = [
    "check_zip_expansion", "extract", "extract_tar_stream", "gunzip_to", "is_keras_zip", "sniff",
]
