"""An uploaded model written to disk once: a file part (or a bundle's body) decides
from its first bytes whether it is a tar or tar.gz, unpacked into its staging folder
while its bytes arrive, or any other file (a frozen graph, an ONNX or .keras file, a
zip), written as it is.

The unpacking runs in a thread of its own (tarfile reads a stream as a file), fed from
the event loop through a queue of at most :data:`BACKLOG` bytes; the handler awaits
:meth:`PartWriter.wait_for_room` when it is full, so a slow disk slows the client down
instead of filling memory. Every check of :mod:`~tfaas_jupyter.server.archives` holds
as for an archive on disk: the tar headers are walked as they pass (metadata records,
member count), each member checked before a byte of it is written (paths, links,
devices), the bytes written counted against the size limit.

A zip is written once and then extracted: its table of contents is at its end, so
nothing in it can be trusted before all of it has arrived (and a ``.keras`` file is a
zip that is kept as it is).
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import threading
from pathlib import Path
from typing import Any, BinaryIO

from . import archives
from .errors import BadRequest

#: Bytes that may wait in memory for the unpacking thread.
BACKLOG = 8 << 20
#: The bytes :func:`archives.sniff` looks at.
_SNIFF = 512


class TarStream:
    """A tar (``gzipped``: a tar.gz) unpacked into the folder ``target`` while its bytes
    arrive: :meth:`write` (the event loop), :meth:`close` at its end, :meth:`wait` (a
    blocking call) for the outcome."""

    def __init__(self, target: Path, *, max_size: int, gzipped: bool) -> None:
        self.target = target
        self._max_size = max_size
        self._gzipped = gzipped
        self._chunks: collections.deque[bytes] = collections.deque()
        self._backlog = 0
        self._ended = False  # all bytes written
        self._aborted = False
        self._done = False  # the thread is finished
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        target.mkdir()
        self._thread = threading.Thread(target=self._run, name="tfaas-unpack", daemon=True)
        self._thread.start()

    # -- the writer's side (the event loop) --------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        if self.error is not None:
            raise self.error
        with self._cond:
            if self._done or self._aborted:
                return  # the archive ended: what follows it (padding) is not read
            self._chunks.append(bytes(data))
            self._backlog += len(data)
            self._cond.notify_all()

    def close(self) -> None:
        """The last byte was written."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def abort(self) -> None:
        """Stop unpacking (the upload failed); :meth:`wait` returns once the thread is out."""
        with self._cond:
            self._aborted = True
            self._chunks.clear()
            self._cond.notify_all()

    def backlog(self) -> int:
        return self._backlog

    def wait_for_room(self) -> None:
        """Block until the backlog is under half :data:`BACKLOG` (a blocking call)."""
        with self._cond:
            while self._backlog > BACKLOG // 2 and not (self._done or self._aborted):
                self._cond.wait()

    def join(self) -> None:
        """Block until the thread is out."""
        self._thread.join()

    def wait(self) -> None:
        """Block until the archive is unpacked; raise what went wrong."""
        self._thread.join()
        if self.error is not None and not self._aborted:
            raise self.error

    # -- the thread's side -------------------------------------------------------------

    def read(self, size: int = -1) -> bytes:
        """The next bytes, as tarfile or gzip asks for them (the thread)."""
        with self._cond:
            while not self._chunks and not self._ended and not self._aborted:
                self._cond.wait()
            if self._aborted:
                raise _Aborted
            if not self._chunks:
                return b""
            chunk = self._chunks.popleft()
            if 0 <= size < len(chunk):
                chunk, rest = chunk[:size], chunk[size:]
                self._chunks.appendleft(rest)
            self._backlog -= len(chunk)
            self._cond.notify_all()
            return chunk

    def _run(self) -> None:
        try:
            reader: Any = self  # read() is all gzip and tarfile ask of a stream
            src: Any = gzip.GzipFile(fileobj=reader, mode="rb") if self._gzipped else reader
            archives.extract_tar_stream(src, self.target, max_size=self._max_size)
        except _Aborted:
            pass
        except archives.UNREADABLE as exc:
            self.error = archives.unreadable(exc)
        except BaseException as exc:  # raised to the handler by write() or wait()
            self.error = exc
        finally:
            with self._cond:
                self._done = True
                self._chunks.clear()
                self._backlog = 0
                self._cond.notify_all()


class _Aborted(Exception):
    """The upload was given up while its archive was being unpacked."""


class PartWriter:
    """Where one file part (or a bundle's body) goes: sniffed on its first bytes
    (:func:`archives.sniff`, the one place an upload's container is detected), then
    unpacked into ``<path>.d`` when ``unpack`` and it is a tar or tar.gz, else written to
    ``path``. :attr:`kind` and :attr:`unpacked` say which, once the part has ended."""

    def __init__(self, path: Path, *, unpack: bool, max_size: int) -> None:
        self.path = path
        self._unpack = unpack
        self._max_size = max_size
        self._head = bytearray()
        self.kind: str | None = None  # archives.sniff() of the first bytes
        self._file: BinaryIO | None = None
        self.unpacked: TarStream | None = None

    def write(self, data: bytes | memoryview) -> None:
        if self.kind is None:
            self._head += data
            if len(self._head) >= _SNIFF:
                self._decide()
            return
        self._out(data)

    def _decide(self) -> None:
        head, self._head = bytes(self._head), bytearray()
        self.kind = archives.sniff(head)
        if self._unpack and self.kind in ("tar", "gzip"):
            self.unpacked = TarStream(self.path.with_name(self.path.name + ".d"),
                                      max_size=self._max_size, gzipped=self.kind == "gzip")
        else:
            self._file = open(self.path, "wb")
        self._out(head)

    def _out(self, data: bytes | memoryview) -> None:
        if self.unpacked is not None:
            self.unpacked.write(data)
        elif self._file is not None:
            self._file.write(data)

    def close(self) -> None:
        """The part ended."""
        if self.kind is None:
            self._decide()
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.unpacked is not None:
            self.unpacked.close()

    @property
    def unpacking(self) -> bool:
        """The part is a tar or tar.gz being unpacked as it arrives."""
        return self.unpacked is not None

    def abort(self) -> None:
        """The upload failed or was given up: close the file (what it still held is
        dropped: a full disk refusing it is no error here), stop the unpacking."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self.unpacked is not None:
            self.unpacked.abort()

    def backlog(self) -> int:
        return self.unpacked.backlog() if self.unpacked is not None else 0

    def wait_for_room(self) -> None:
        if self.unpacked is not None:
            self.unpacked.wait_for_room()

    def wait(self) -> None:
        """Block until the part is on disk (unpacked); raise what went wrong."""
        if self.unpacked is not None:
            self.unpacked.wait()

    def wait_stopped(self) -> None:
        """Block until nothing writes into the part's folder any more, whatever the outcome
        (before the staging folder is removed)."""
        if self.unpacked is not None:
            self.unpacked.join()

    def extracted(self) -> Path:
        """The folder the archive was unpacked into (after :meth:`wait`)."""
        if self.unpacked is None:
            raise BadRequest("not an archive")
        return self.unpacked.target
