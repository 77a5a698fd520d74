"""Framing between the supervisor (Jupyter server side) and the model worker.

Shared by both sides, so it depends on the standard library and numpy only (never
TensorFlow). One frame is::

    +-----------------------+-------------------------+-----------+-----------+-----
    | header length: uint32 | header (binary, below)  | buffer 0  | buffer 1  | ...
    | (4 bytes, big-endian) | (header length bytes)   | (raw)     | (raw)     |
    +-----------------------+-------------------------+-----------+-----------+-----

A frame of at most ``JOIN_LIMIT`` bytes is written in one piece; a bigger one is
written header first, then each array from its own memory (never copied).

Each side reads and writes a header as a dict; on the wire it is a fixed binary part,
the array descriptors and, only when the dict holds more than the members the hot
path uses, a JSON object with the rest (all integers big-endian)::

    fixed   flags: u16 | arrays: u16 | op bytes: u16 | key bytes: u16 | JSON bytes: u32
            | id: u64 | model_s: f64
    op      UTF-8, the header's "op"             (flags & 1: "id" present,
    key     UTF-8, the header's "key"             2: "op", 4: "key", 8: "model_s")
    arrays  per array: dtype length: u8 | dtype (numpy's dtype.str, ASCII) | ndim: u8
            | ndim dims: u64 each
    JSON    the other members (absent for a prediction and its answer)

So a prediction's request and answer cross without any JSON. ``dtype`` is numpy's
``dtype.str`` (byte order explicit) and each buffer is exactly ``prod(shape) *
itemsize`` bytes of C-ordered data. Arrays are never pickled nor converted element by
element: the sender writes the array's memory, the receiver wraps the received bytes
with :func:`numpy.frombuffer`.

The header's members belong to the protocol in :mod:`.main`: requests carry ``"id"``
and ``"op"``, replies carry the same ``"id"`` and either results or
``"error"``/``"kind"``, ``kind`` being one of the :class:`ErrorKind` values.
"""

from __future__ import annotations

import enum
import functools
import json
import math
import socket
import struct
import threading
from typing import Any, Iterable, Literal, Sequence, overload

import numpy as np

__all__ = [
    "ErrorKind",
    "MAX_HEADER",
    "ProtocolError",
    "encode_header",
    "frame_parts",
    "describe",
    "as_bytes",
    "parse_header",
    "arrays_from_buffers",
    "BlockingChannel",
]

_LEN = struct.Struct(">I")
#: A header is small; anything bigger means the stream is out of sync.
MAX_HEADER = 16 * 1024 * 1024
#: Frames up to this size go out in one write (header and arrays joined: one
#: system call and one wake-up of the reader, for a copy of a few KiB at most);
#: bigger arrays are written from their own memory, never copied.
JOIN_LIMIT = 64 * 1024
#: The fixed part of a header: flags, arrays, op bytes, key bytes, JSON bytes, id, model_s.
_FIXED = struct.Struct(">HHHHIQd")
_HAS_ID, _HAS_OP, _HAS_KEY, _HAS_MODEL_S = 1, 2, 4, 8
_U16, _U64 = 1 << 16, 1 << 64
#: The JSON of the other header members (one encoder: no set-up per frame).
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
#: How much the blocking reader asks the socket for at once (a small frame: one call).
_READ_CHUNK = 64 * 1024


class ProtocolError(Exception):
    """The byte stream does not contain a valid frame."""


class ErrorKind(str, enum.Enum):
    """Why a request to the model worker failed; carried as ``"kind"`` in error replies.

    The worker reports the first six; the supervisor adds the last two. The server
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
    #: The worker itself has grown past its memory budget, with no model left to evict:
    #: a new worker would hold the model, so restart it between requests and load again.
    RESTART = "restart"
    #: The worker did not answer in time; it was killed and will be restarted.
    TIMEOUT = "timeout"
    #: The worker cannot be started, or died while the request was in flight.
    UNAVAILABLE = "unavailable"


def _check_dtype(dt: np.dtype) -> None:
    if dt.hasobject or dt.fields is not None:
        raise TypeError(f"arrays of dtype {dt} cannot cross the wire (raw numeric data only)")


def describe(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The arrays to send, each checked and C-contiguous.

    Copies only when the array is not already C-contiguous (``np.ascontiguousarray``
    is not used: it turns 0-d arrays into 1-d ones).
    """
    out: list[np.ndarray] = []
    for a in arrays:
        a = np.asarray(a)
        if not a.flags.c_contiguous:
            a = a.copy(order="C")
        _check_dtype(a.dtype)
        out.append(a)
    return out


def uninitialized(nbytes: int) -> np.ndarray:
    """A writable buffer of ``nbytes`` for bytes about to be received into it: not
    zeroed first (``bytearray(n)`` writes n zeros that the socket overwrites at once;
    for a 16.8 MB tensor that is milliseconds)."""
    return np.empty(nbytes, np.uint8)


def as_bytes(a: np.ndarray) -> memoryview:
    """A zero-copy byte view of a C-contiguous array (works for 0-d and empty arrays)."""
    return a.reshape(-1).view(np.uint8).data


def frame_parts(header: dict[str, Any], arrays: Sequence[np.ndarray]) -> list[bytes | memoryview]:
    """The buffers of one frame, in order: one when the frame is small
    (:data:`JOIN_LIMIT`: the arrays' bytes are copied into it), else the header then
    each array's own memory."""
    arrs = describe(arrays)
    head = encode_header(header, arrs)
    if not arrs:
        return [head]
    if len(head) + sum(a.nbytes for a in arrs) <= JOIN_LIMIT:
        return [b"".join([head, *(a.tobytes() for a in arrs)])]
    return [head, *(as_bytes(a) for a in arrs if a.nbytes)]


def encode_header(header: dict[str, Any], arrays: Sequence[np.ndarray] = ()) -> bytes:
    """Length prefix + binary header describing ``arrays`` (checked, C-contiguous).

    ``id``, ``op``, ``key`` and ``model_s`` go in the fixed part when their values fit
    it; every other member (and one that does not fit) goes in the JSON part. A
    member ``arrays`` is ignored: the arrays describe themselves.
    """
    flags, rid, model_s, op, key = 0, 0, 0.0, b"", b""
    rest: dict[str, Any] | None = None
    for name, value in header.items():
        if name == "id" and type(value) is int and 0 <= value < _U64:
            flags |= _HAS_ID
            rid = value
        elif name == "op" and type(value) is str and len(value) < _U16 // 4:
            flags |= _HAS_OP
            op = value.encode()
        elif name == "key" and type(value) is str and len(value) < _U16 // 4:
            flags |= _HAS_KEY
            key = value.encode()
        elif name == "model_s" and type(value) is float:
            flags |= _HAS_MODEL_S
            model_s = value
        elif name != "arrays":
            if rest is None:
                rest = {}
            rest[name] = value
    if len(arrays) >= _U16:
        raise ProtocolError(f"too many arrays in one frame ({len(arrays)})")
    described = [_describe_one(a) for a in arrays]
    extra = _JSON.encode(rest).encode() if rest else b""
    size = _FIXED.size + len(op) + len(key) + sum(map(len, described)) + len(extra)
    if size > MAX_HEADER:
        raise ProtocolError(f"frame header too large ({size} bytes)")
    return b"".join([
        _LEN.pack(size),
        _FIXED.pack(flags, len(arrays), len(op), len(key), len(extra), rid, model_s),
        op, key, *described, extra,
    ])


def _describe_one(a: np.ndarray) -> bytes:
    dt = _DTYPE_SPELLINGS.get(a.dtype)
    if dt is None:
        spelling = a.dtype.str.encode()
        dt = bytes([len(spelling)]) + spelling
        if len(_DTYPE_SPELLINGS) < 64:
            _DTYPE_SPELLINGS[a.dtype] = dt
    return dt + _ndim_dims_struct(a.ndim).pack(a.ndim, *a.shape)


#: each dtype's spelling on the wire (its length, then ``dtype.str``)
_DTYPE_SPELLINGS: dict[np.dtype, bytes] = {}


@functools.lru_cache(maxsize=64)
def _ndim_dims_struct(ndim: int) -> struct.Struct:
    return struct.Struct(f">B{ndim}Q")


@functools.lru_cache(maxsize=64)
def _dims_struct(ndim: int) -> struct.Struct:
    return struct.Struct(f">{ndim}Q")


#: dtypes by their wire spelling, so a frame does not parse a dtype string per array
_DTYPES: dict[bytes, np.dtype] = {}


def _dtype(spelling: bytes) -> np.dtype:
    dt = _DTYPES.get(spelling)
    if dt is None:
        dt = np.dtype(spelling.decode("ascii"))
        _check_dtype(dt)
        if len(_DTYPES) < 64:
            _DTYPES[spelling] = dt
    return dt


Sizes = list[tuple[np.dtype, tuple[int, ...], int]]


def parse_header(raw: bytes | bytearray) -> tuple[dict[str, Any], Sizes]:
    """The header dict and (dtype, shape, nbytes) of each buffer that follows it."""
    try:
        flags, n_arrays, op_len, key_len, json_len, rid, model_s = _FIXED.unpack_from(raw, 0)
        header: dict[str, Any] = {}
        pos = _FIXED.size
        if flags & _HAS_ID:
            header["id"] = rid
        if flags & _HAS_OP:
            header["op"] = str(raw[pos:pos + op_len], "utf-8")
        pos += op_len
        if flags & _HAS_KEY:
            header["key"] = str(raw[pos:pos + key_len], "utf-8")
        pos += key_len
        if flags & _HAS_MODEL_S:
            header["model_s"] = model_s
        sizes: Sizes = []
        for _ in range(n_arrays):
            dt_len = raw[pos]
            dt = _dtype(bytes(raw[pos + 1:pos + 1 + dt_len]))
            pos += 1 + dt_len
            ndim = raw[pos]
            shape = _dims_struct(ndim).unpack_from(raw, pos + 1)
            pos += 1 + 8 * ndim
            sizes.append((dt, shape, math.prod(shape) * dt.itemsize))
        if json_len:
            rest = json.loads(raw[pos:pos + json_len])
            if not isinstance(rest, dict):
                raise ProtocolError("frame header's JSON part is not an object")
            header.update(rest)
            pos += json_len
    except ProtocolError:
        raise
    except (struct.error, IndexError, ValueError, TypeError) as e:
        raise ProtocolError(f"bad frame header: {e}") from None
    if pos != len(raw):
        raise ProtocolError(f"frame header of {len(raw)} bytes holds {pos}")
    return header, sizes


def arrays_from_buffers(sizes: Iterable[tuple[np.dtype, tuple[int, ...], int]],
                        buffers: Iterable[bytes | bytearray | np.ndarray]) -> list[np.ndarray]:
    """Wrap received buffers as arrays without copying.

    Arrays made from ``bytes`` are read-only; from a writable buffer they are writable.
    """
    return [np.ndarray(shape, dt, buffer=buf) for (dt, shape, _), buf in zip(sizes, buffers)]


# --------------------------------------------------------------------------- blocking side


class BlockingChannel:
    """Blocking frame reader/writer over a connected stream socket (the worker side).

    Reading happens on one thread at a time (the caller serialises :meth:`read`);
    :meth:`write` may be called from any thread (a lock keeps frames whole). The reader
    asks the socket for up to 64 KiB at once, so a small frame costs one system call;
    an array bigger than what arrived with its header is received into its own buffer.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._wlock = threading.Lock()
        self._buf = bytearray(_READ_CHUNK)
        self._view = memoryview(self._buf)
        self._start = 0  # unread bytes are _buf[_start:_end]
        self._end = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not read yet (a frame may be waiting here, not on the socket)."""
        return self._end - self._start

    def _fill(self, n: int, *, eof_ok: bool = False) -> bool:
        """Make ``n`` unread bytes available in the buffer (``n`` <= its size);
        False at a clean EOF when ``eof_ok`` and nothing is buffered."""
        if self._end - self._start >= n:
            return True
        if self._start + n > len(self._buf):  # move the unread bytes to the front
            held = self._end - self._start
            self._buf[:held] = self._view[self._start:self._end]
            self._start, self._end = 0, held
        while self._end - self._start < n:
            k = self.sock.recv_into(self._view[self._end:])
            if k == 0:
                held = self._end - self._start
                if eof_ok and held == 0:
                    return False
                raise EOFError(f"channel closed in the middle of a frame ({held}/{n} bytes)")
            self._end += k
        return True

    def _take(self, n: int) -> bytes:
        """The next ``n`` bytes (``n`` <= the buffer's size), copied out."""
        self._fill(n)
        out = bytes(self._view[self._start:self._start + n])
        self._start += n
        return out

    @overload
    def _take_owned(self, n: int, *, array: Literal[False] = False) -> bytearray: ...
    @overload
    def _take_owned(self, n: int, *, array: Literal[True]) -> np.ndarray: ...
    def _take_owned(self, n: int, *, array: bool = False) -> bytearray | np.ndarray:
        """The next ``n`` bytes in a buffer of their own (an array's bytes: an
        :func:`uninitialized` one): what is buffered already is copied, the rest
        received straight into it."""
        out = uninitialized(n) if array else bytearray(n)
        held = min(n, self._end - self._start)
        out[:held] = self._view[self._start:self._start + held]
        self._start += held
        view = out.data if isinstance(out, np.ndarray) else memoryview(out)
        got = held
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise EOFError(f"channel closed in the middle of a frame ({got}/{n} bytes)")
            got += k
        return out

    def read(self) -> tuple[dict[str, Any], list[np.ndarray]] | None:
        """One frame (arrays are writable, backed by their own buffers); ``None`` at EOF."""
        if not self._fill(_LEN.size, eof_ok=True):
            return None
        (n,) = _LEN.unpack(self._take(_LEN.size))
        if n > MAX_HEADER:
            raise ProtocolError(f"frame header length {n} is too large")
        if n <= len(self._buf):
            header, sizes = parse_header(self._take(n))
        else:
            header, sizes = parse_header(self._take_owned(n))
        buffers = [self._take_owned(nb, array=True) for _, _, nb in sizes]
        return header, arrays_from_buffers(sizes, buffers)

    def write(self, header: dict[str, Any], arrays: Sequence[np.ndarray] = ()) -> None:
        parts = frame_parts(header, arrays)
        with self._wlock:
            for part in parts:
                self.sock.sendall(part)
