"""Framing between the supervisor (Jupyter server side) and the model worker.

Shared by both sides, so it depends on the standard library and numpy only (never
TensorFlow). One frame is::

    +-----------------------+----------------------+-----------+-----------+-----
    | header length: uint32 | header: UTF-8 JSON   | buffer 0  | buffer 1  | ...
    | (4 bytes, big-endian) | (header length bytes)| (raw)     | (raw)     |
    +-----------------------+----------------------+-----------+-----------+-----

A frame of at most ``JOIN_LIMIT`` bytes is written in one piece; a bigger one is
written header first, then each array from its own memory (never copied).

The header is a JSON object. Its ``"arrays"`` member (absent when there is none)
describes the raw buffers that follow, in order: ``[{"dtype": "<f4", "shape": [3, 42]},
...]``. ``dtype`` is numpy's ``dtype.str`` (so byte order is explicit) and each buffer is
exactly ``prod(shape) * itemsize`` bytes of C-ordered data. Arrays are never pickled nor
converted element by element: the sender writes the array's memory, the receiver wraps
the received bytes with :func:`numpy.frombuffer`.

Every other header member belongs to the protocol in :mod:`.main`: requests carry
``"id"`` and ``"op"``, replies carry the same ``"id"`` and either results or
``"error"``/``"kind"``, ``kind`` being one of the :class:`ErrorKind` values.
"""

from __future__ import annotations

import asyncio
import enum
import json
import math
import socket
import struct
import threading
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = [
    "ErrorKind",
    "MAX_HEADER",
    "ProtocolError",
    "encode_header",
    "frame_parts",
    "describe",
    "as_bytes",
    "decode_arrays_sizes",
    "arrays_from_buffers",
    "read_frame_async",
    "write_frame_async",
    "BlockingChannel",
]

_LEN = struct.Struct(">I")
#: A header is small JSON; anything bigger means the stream is out of sync.
MAX_HEADER = 16 * 1024 * 1024
#: Frames up to this size go out in one write (header and arrays joined: one
#: system call and one wake-up of the reader, for a copy of a few KiB at most);
#: bigger arrays are written from their own memory, never copied.
JOIN_LIMIT = 64 * 1024


class ProtocolError(Exception):
    """The byte stream does not contain a valid frame."""


class ErrorKind(str, enum.Enum):
    """Why a request to the model worker failed; carried as ``"kind"`` in error replies.

    The worker reports the first five; the supervisor adds the last two. The server
    maps each kind to one HTTP status (:mod:`tfaas_jupyter.server.errors`).
    """

    #: The request's inputs do not fit the model (shape, dtype, values TF refuses).
    BAD_INPUT = "input"
    #: The model failed while running.
    MODEL = "model"
    #: The model's files cannot be loaded (corrupt, not a model of their format).
    LOAD = "load"
    #: The model ran out of memory (TensorFlow's ResourceExhausted, MemoryError).
    OUT_OF_MEMORY = "oom"
    #: The model is not in the worker's cache (evicted, or a new worker): load it first.
    NOT_LOADED = "not_loaded"
    #: The worker did not answer in time; it was killed and will be restarted.
    TIMEOUT = "timeout"
    #: The worker cannot be started, or died while the request was in flight.
    UNAVAILABLE = "unavailable"


def _check_dtype(dt: np.dtype) -> None:
    if dt.hasobject or dt.fields is not None:
        raise TypeError(f"arrays of dtype {dt} cannot cross the wire (raw numeric data only)")


def describe(arrays: Sequence[np.ndarray]) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Return the header descriptors and the C-contiguous arrays to send.

    Copies only when the array is not already C-contiguous (``np.ascontiguousarray``
    is not used: it turns 0-d arrays into 1-d ones).
    """
    descs: list[dict[str, Any]] = []
    out: list[np.ndarray] = []
    for a in arrays:
        a = np.asarray(a)
        if not a.flags.c_contiguous:
            a = a.copy(order="C")
        _check_dtype(a.dtype)
        descs.append({"dtype": a.dtype.str, "shape": [int(d) for d in a.shape]})
        out.append(a)
    return descs, out


def as_bytes(a: np.ndarray) -> memoryview:
    """A zero-copy byte view of a C-contiguous array (works for 0-d and empty arrays)."""
    return memoryview(a.reshape(-1).view(np.uint8))


def frame_parts(header: dict[str, Any], arrays: Sequence[np.ndarray]) -> list[bytes | memoryview]:
    """The buffers of one frame, in order: one when the frame is small
    (:data:`JOIN_LIMIT`), else the header then each array's own memory."""
    descs, arrs = describe(arrays)
    head = encode_header(header, descs)
    views = [as_bytes(a) for a in arrs if a.nbytes]
    if not views:
        return [head]
    if len(head) + sum(v.nbytes for v in views) <= JOIN_LIMIT:
        return [b"".join([head, *views])]
    return [head, *views]


def encode_header(header: dict[str, Any], descs: list[dict[str, Any]]) -> bytes:
    """Length prefix + JSON header (with the array descriptors, if any)."""
    if descs:
        header = {**header, "arrays": descs}
    elif "arrays" in header:
        header = {k: v for k, v in header.items() if k != "arrays"}
    raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    if len(raw) > MAX_HEADER:
        raise ProtocolError(f"frame header too large ({len(raw)} bytes)")
    return _LEN.pack(len(raw)) + raw


def _parse_header(raw: bytes | bytearray) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except ValueError as e:
        raise ProtocolError(f"frame header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not a JSON object")
    return header


def decode_arrays_sizes(header: dict[str, Any]) -> list[tuple[np.dtype, tuple[int, ...], int]]:
    """(dtype, shape, nbytes) of each buffer announced by ``header``."""
    out = []
    for d in header.get("arrays") or ():
        try:
            dt = np.dtype(d["dtype"])
            shape = tuple(int(s) for s in d["shape"])
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"bad array descriptor {d!r}: {e}") from None
        _check_dtype(dt)
        if any(s < 0 for s in shape):
            raise ProtocolError(f"bad array shape {shape}")
        out.append((dt, shape, math.prod(shape) * dt.itemsize))
    return out


def arrays_from_buffers(
    sizes: Iterable[tuple[np.dtype, tuple[int, ...], int]], buffers: Iterable[bytes | bytearray]
) -> list[np.ndarray]:
    """Wrap received buffers as arrays without copying.

    Arrays made from ``bytes`` are read-only; from ``bytearray`` they are writable.
    """
    return [
        np.frombuffer(buf, dtype=dt, count=math.prod(shape)).reshape(shape)
        for (dt, shape, _), buf in zip(sizes, buffers)
    ]


# --------------------------------------------------------------------------- asyncio side


async def read_frame_async(
    reader: asyncio.StreamReader,
) -> tuple[dict[str, Any], list[np.ndarray]] | None:
    """Read one frame; ``None`` on a clean EOF at a frame boundary.

    Raises :class:`ProtocolError` on garbage and ``asyncio.IncompleteReadError`` when the
    stream ends in the middle of a frame. The arrays returned are read-only.
    """
    try:
        prefix = await reader.readexactly(_LEN.size)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise
    (n,) = _LEN.unpack(prefix)
    if n > MAX_HEADER:
        raise ProtocolError(f"frame header length {n} is too large")
    header = _parse_header(await reader.readexactly(n))
    sizes = decode_arrays_sizes(header)
    buffers = [await reader.readexactly(nbytes) if nbytes else b"" for _, _, nbytes in sizes]
    return header, arrays_from_buffers(sizes, buffers)


async def write_frame_async(
    writer: asyncio.StreamWriter, header: dict[str, Any], arrays: Sequence[np.ndarray] = ()
) -> None:
    """Write one frame and wait for the transport to drain.

    All the ``write`` calls happen synchronously before the first ``await``, so frames
    written concurrently by several coroutines never interleave.
    """
    for part in frame_parts(header, arrays):
        writer.write(part)
    await writer.drain()


# --------------------------------------------------------------------------- blocking side


class BlockingChannel:
    """Blocking frame reader/writer over a connected stream socket (the worker side).

    Reading happens on one thread only; :meth:`write` may be called from any thread
    (a lock keeps frames whole).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._wlock = threading.Lock()

    def _recv_exactly(self, n: int, *, eof_ok: bool = False) -> bytearray | None:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                if eof_ok and got == 0:
                    return None
                raise EOFError(f"channel closed in the middle of a frame ({got}/{n} bytes)")
            got += k
        return buf

    def read(self) -> tuple[dict[str, Any], list[np.ndarray]] | None:
        """One frame (arrays are writable, backed by the received buffers); ``None`` at EOF."""
        prefix = self._recv_exactly(_LEN.size, eof_ok=True)
        if prefix is None:
            return None
        (n,) = _LEN.unpack(prefix)
        if n > MAX_HEADER:
            raise ProtocolError(f"frame header length {n} is too large")
        raw = self._recv_exactly(n)
        assert raw is not None
        header = _parse_header(raw)
        sizes = decode_arrays_sizes(header)
        buffers = []
        for _, _, nbytes in sizes:
            b = self._recv_exactly(nbytes)
            assert b is not None
            buffers.append(b)
        return header, arrays_from_buffers(sizes, buffers)

    def write(self, header: dict[str, Any], arrays: Sequence[np.ndarray] = ()) -> None:
        parts = frame_parts(header, arrays)
        with self._wlock:
            for part in parts:
                self.sock.sendall(part)
