"""A multipart/form-data parser over a body spooled to disk.

Tornado's own parser needs the whole body in memory and refuses any body sent
with a ``Content-Encoding`` header, which the original TFaaS client always sets
(``base64``) on uploads. This one reads the spooled body through ``mmap`` and
writes each file part to its own file, so an upload of any size costs little
memory.
"""

from __future__ import annotations

import mmap
import re
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

from .errors import BadRequest

_MAX_HEADER_BYTES = 16 * 1024
_MAX_FIELD_BYTES = 1 << 20
#: Most parts one form may carry (an upload has four: name, params, model, labels).
MAX_PARTS = 64


@dataclass
class FilePart:
    """A file part of the form, written to ``path``."""

    filename: str
    path: Path | None
    content_type: str | None = None
    data: bytes | None = None  # set instead of ``path`` for a part held in memory

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.path is not None
        return self.path.stat().st_size


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, FilePart] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """A field's value, whether it was sent as a text field or as a small file part."""
        if name in self.fields:
            return self.fields[name]
        part = self.files.get(name)
        if part is not None and part.size() <= _MAX_FIELD_BYTES:
            return part.read_bytes().decode("utf-8", errors="replace")
        return None

    def has(self, name: str) -> bool:
        return name in self.fields or name in self.files


def boundary_of(content_type: str) -> bytes:
    msg = Message()
    msg["content-type"] = content_type
    if msg.get_content_type() != "multipart/form-data":
        raise BadRequest("expected a multipart/form-data body")
    boundary = msg.get_param("boundary")
    if not boundary or not isinstance(boundary, str):
        raise BadRequest("multipart body has no boundary in its Content-Type")
    if len(boundary) > 200:
        raise BadRequest("multipart boundary is too long")
    return boundary.encode("latin-1")


def _parse_part_headers(raw: bytes) -> tuple[str, str | None, str | None]:
    if len(raw) > _MAX_HEADER_BYTES:
        raise BadRequest("multipart part headers are too long")
    msg = Message()
    for line in raw.decode("utf-8", errors="replace").split("\r\n"):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise BadRequest("malformed multipart part header")
        msg[key.strip()] = value.strip()
    disposition = msg.get("content-disposition")
    if not disposition:
        raise BadRequest("multipart part has no Content-Disposition")
    dmsg = Message()
    dmsg["content-disposition"] = disposition
    name = dmsg.get_param("name", header="content-disposition")
    filename = dmsg.get_param("filename", header="content-disposition")
    if not isinstance(name, str) or not name:
        raise BadRequest("multipart part has no name")
    if filename is not None and not isinstance(filename, str):
        filename = str(filename)
    return name, filename, msg.get("content-type")


_SAFE_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def parse_multipart(body: Path, content_type: str, out_dir: Path) -> Form:
    """Parse the multipart body in the file ``body``; file parts go to ``out_dir``."""
    boundary = b"--" + boundary_of(content_type)
    form = Form()
    size = body.stat().st_size
    if size == 0:
        raise BadRequest("empty multipart body")
    with open(body, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        pos = mm.find(boundary)
        if pos < 0:
            raise BadRequest("multipart body does not contain its boundary")
        index = parts = 0
        while True:
            pos += len(boundary)
            if mm[pos : pos + 2] == b"--":
                break  # closing boundary
            parts += 1
            if parts > MAX_PARTS:
                raise BadRequest(f"multipart body has more than {MAX_PARTS} parts")
            if mm[pos : pos + 2] != b"\r\n":
                raise BadRequest("malformed multipart body")
            header_end = mm.find(b"\r\n\r\n", pos + 2)
            if header_end < 0:
                raise BadRequest("truncated multipart body (part headers never end)")
            name, filename, ptype = _parse_part_headers(mm[pos + 2 : header_end])
            start = header_end + 4
            end = mm.find(b"\r\n" + boundary, start)
            if end < 0:
                raise BadRequest("truncated multipart body (no closing boundary)")
            if filename is None:
                if end - start > _MAX_FIELD_BYTES:
                    raise BadRequest(f"form field {name!r} is too large")
                form.fields[name] = mm[start:end].decode("utf-8", errors="replace")
            else:
                index += 1
                target = out_dir / f"part{index}-{_SAFE_CHARS.sub('_', name)[:40]}"
                with open(target, "wb") as out:
                    view = memoryview(mm)
                    try:
                        out.write(view[start:end])
                    finally:
                        view.release()
                form.files[name] = FilePart(filename=filename, path=target, content_type=ptype)
            pos = end + 2
    return form
