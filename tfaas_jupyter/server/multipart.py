"""The server's one multipart/form-data parser: :class:`FormStream`, fed the body as
it arrives.

Tornado's own parser needs the whole body in memory and refuses any body sent with
a ``Content-Encoding`` header, which the original TFaaS client always sets
(``base64``) on uploads. This one keeps only a delimiter's length of the body at a
time: each file part is written once, to its own file (the model decoded from base64
on the way; a tar or tar.gz model unpacked into its folder instead, see
:mod:`~tfaas_jupyter.server.unpack`), or held in memory for a small form (``/image``).
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from .errors import BadRequest
from .unpack import PartWriter

_MAX_HEADER_BYTES = 16 * 1024
_MAX_FIELD_BYTES = 1 << 20
#: Most parts one form may carry (an upload has four: name, params, model, labels).
MAX_PARTS = 64


@dataclass
class FilePart:
    """A file part of the form, written to ``path`` (or unpacked: ``writer``)."""

    filename: str
    path: Path | None
    content_type: str | None = None
    data: bytes | None = None  # set instead of ``path`` for a part held in memory
    #: How the part went to disk, when the form stream wrote it: its container format
    #: (``writer.kind``), and the folder it was unpacked into (``writer.unpacked``).
    writer: PartWriter | None = None

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
        if part is not None and (part.path or part.data is not None) \
                and part.size() <= _MAX_FIELD_BYTES:
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


#: A part whose first bytes are all base64 text (up to this many) is decoded on the way.
_BASE64_SNIFF = 64 * 1024
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_WHITESPACE = b" \t\r\n\v\f"


class _Base64Sink:
    """Writes a part to ``out``, base64-decoded on the way when its first bytes are
    base64 text; a part that is not (a binary model sent as it is) is written as it is.

    The original client sends ``Content-Encoding: base64`` on every upload but encodes
    only the parts it guesses are binary (a .pb), so each part decides for itself."""

    def __init__(self, out: Any, name: str) -> None:
        self.out = out
        self.name = name
        self._head = bytearray()
        self._decoding: bool | None = None  # None: not decided yet
        self._carry = b""

    def write(self, data: bytes | memoryview) -> None:
        if self._decoding is None:
            self._head += data
            if len(self._head) < _BASE64_SNIFF:
                return
            self._decide()
            return
        self._emit(data)

    def _decide(self) -> None:
        head, self._head = bytes(self._head), bytearray()
        self._decoding = not head.translate(None, _BASE64_ALPHABET + _WHITESPACE)
        self._emit(head)

    def _emit(self, data: bytes | memoryview) -> None:
        if not self._decoding:
            self.out.write(data)
            return
        text = bytes(data)
        if text.translate(None, _BASE64_ALPHABET + _WHITESPACE):
            raise BadRequest(f"part {self.name!r} is not valid base64: it holds bytes that "
                             "are not base64 text")
        text = self._carry + text.translate(None, _WHITESPACE)
        whole = len(text) - len(text) % 4
        try:
            self.out.write(binascii.a2b_base64(text[:whole]))
        except binascii.Error as exc:
            raise BadRequest(f"part {self.name!r} is not valid base64: {exc}") from None
        self._carry = text[whole:]

    def close(self) -> None:
        if self._decoding is None:
            self._decide()
        if self._decoding and self._carry.strip(b"="):
            raise BadRequest(f"part {self.name!r} is not valid base64: its length is not a "
                             "multiple of 4")


class FormStream:
    """A multipart/form-data body parsed as its bytes arrive (:meth:`feed`, then
    :meth:`finish`): each file part is written once, to its own file in ``folder``
    (the parts named in ``base64`` decoded on the way, as the original client sends
    its model; the parts named in ``unpack`` unpacked there when they are a tar or
    tar.gz, with at most ``max_extracted`` bytes), or kept in memory when ``folder`` is
    None; text fields are kept in memory (at most 1 MiB each). The one multipart parser
    of the server: uploads stream through it, ``/image`` feeds it its body whole.
    """

    def __init__(self, content_type: str, folder: Path | None, *,
                 base64: frozenset[str] = frozenset(), unpack: frozenset[str] = frozenset(),
                 max_extracted: int = 0) -> None:
        self._delimiter = b"--" + boundary_of(content_type)
        #: the delimiter as it ends a part's data
        self._closing = b"\r\n" + self._delimiter
        self._folder = folder
        self._base64 = base64
        self._unpack = unpack
        self._max_extracted = max_extracted
        self._writers: list[PartWriter] = []
        self._buf = bytearray()
        self._state = "preamble"
        self._parts = 0
        self._index = 0
        self._seen = 0
        self.form = Form()
        # the part being read
        self._name = ""
        self._filename: str | None = None
        self._ptype: str | None = None
        self._field: bytearray | None = None
        self._writer: PartWriter | None = None
        self._sink: Any = None
        self._path: Path | None = None
        self._data: bytearray | None = None

    def feed(self, chunk: bytes | memoryview) -> None:
        """The next bytes of the body."""
        self._seen += len(chunk)
        self._buf += chunk
        while self._step():
            pass

    def finish(self) -> Form:
        """The form, once the whole body has been fed; a 400 when it is incomplete."""
        if self._seen == 0:
            raise BadRequest("empty multipart body")
        if self._state == "preamble":
            raise BadRequest("multipart body does not contain its boundary")
        if self._state == "headers":
            raise BadRequest("truncated multipart body (part headers never end)")
        if self._state != "done":
            self.close()
            raise BadRequest("truncated multipart body (no closing boundary)")
        return self.form

    def close(self) -> None:
        """Give up the part being written (a body that ended early, or an error)."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    def abort(self) -> None:
        """Give up every part (the upload failed): :meth:`wait_stopped` then returns at once."""
        self.close()
        for writer in self._writers:
            writer.abort()

    def wait_stopped(self) -> None:
        """Block until no part is being unpacked any more (before its folder is removed)."""
        for writer in self._writers:
            writer.wait_stopped()

    @property
    def unpacking(self) -> bool:
        """A part of the form is a tar or tar.gz being unpacked as it arrives."""
        return any(writer.unpacking for writer in self._writers)

    def backlog(self) -> int:
        """Bytes of the part being written that wait in memory to be unpacked."""
        return self._writer.backlog() if self._writer is not None else 0

    def wait_for_room(self) -> None:
        """Block until the part being written has room for more (a blocking call)."""
        if self._writer is not None:
            self._writer.wait_for_room()

    def _step(self) -> bool:
        """Parse what the buffer allows; whether to go on."""
        buf = self._buf
        if self._state == "preamble":
            pos = buf.find(self._delimiter)
            if pos < 0:
                # keep what may be the start of the delimiter
                del buf[:max(0, len(buf) - len(self._delimiter))]
                return False
            del buf[:pos + len(self._delimiter)]
            self._state = "after-delimiter"
            return True
        if self._state == "after-delimiter":
            if len(buf) < 2:
                return False
            if buf[:2] == b"--":
                self._state = "done"
                buf.clear()  # the epilogue is ignored
                return False
            if buf[:2] != b"\r\n":
                raise BadRequest("malformed multipart body")
            self._parts += 1
            if self._parts > MAX_PARTS:
                raise BadRequest(f"multipart body has more than {MAX_PARTS} parts")
            del buf[:2]
            self._state = "headers"
            return True
        if self._state == "headers":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEADER_BYTES:
                    raise BadRequest("multipart part headers are too long")
                return False
            self._start_part(bytes(buf[:end]))
            del buf[:end + 4]
            self._state = "data"
            return True
        if self._state == "data":
            end = buf.find(self._closing)
            if end < 0:
                keep = len(self._closing) - 1
                if len(buf) > keep:
                    self._part_data(memoryview(buf)[:len(buf) - keep])
                    del buf[:len(buf) - keep]
                return False
            self._part_data(memoryview(buf)[:end])
            del buf[:end + len(self._closing)]
            self._end_part()
            self._state = "after-delimiter"
            return True
        if self._state == "done":
            buf.clear()
        return False

    def _start_part(self, raw: bytes) -> None:
        self._name, self._filename, self._ptype = _parse_part_headers(raw)
        if self._filename is None:
            self._field = bytearray()
        elif self._folder is None:
            self._data = bytearray()
        else:
            self._index += 1
            self._path = self._folder / f"part{self._index}-{_SAFE_CHARS.sub('_', self._name)[:40]}"
            self._writer = PartWriter(self._path, unpack=self._name in self._unpack,
                                      max_size=self._max_extracted)
            self._writers.append(self._writer)
            self._sink = (_Base64Sink(self._writer, self._name) if self._name in self._base64
                          else self._writer)

    def _part_data(self, data: memoryview) -> None:
        try:
            if self._field is not None:
                if len(self._field) + len(data) > _MAX_FIELD_BYTES:
                    raise BadRequest(f"form field {self._name!r} is too large")
                self._field += data
            elif self._data is not None:
                self._data += data
            elif self._sink is not None:
                self._sink.write(data)
        finally:
            data.release()

    def _end_part(self) -> None:
        if self._field is not None:
            self.form.fields[self._name] = self._field.decode("utf-8", errors="replace")
            self._field = None
            return
        filename = self._filename or ""
        if self._data is not None:
            self.form.files[self._name] = FilePart(filename=filename, path=None,
                                                   content_type=self._ptype,
                                                   data=bytes(self._data))
            self._data = None
            return
        if isinstance(self._sink, _Base64Sink):
            self._sink.close()
        writer, self._writer = self._writer, None
        assert writer is not None
        writer.close()
        self.form.files[self._name] = FilePart(
            filename=filename, path=None if writer.unpacked else self._path,
            content_type=self._ptype, writer=writer,
        )
        self._sink = None
