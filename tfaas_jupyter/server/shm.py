"""Triton's system shared memory extension: client regions read and written in place.

A client on the same machine writes its tensors into a POSIX shared memory object
(``/dev/shm/NAME``), registers it under a region name (``POST
v2/systemsharedmemory/region/REGION/register`` with ``key``, ``offset``,
``byte_size``), and then names the region in an infer request's input and output
``parameters`` (``shared_memory_region``, ``shared_memory_offset``,
``shared_memory_byte_size``) instead of sending bytes. The request's inputs are
numpy views of the mapped region: nothing is copied on the way in, outputs are
written into their region.

What is checked, and why (docs/shared-memory.md):

* the object is opened without following a symlink (``O_NOFOLLOW``), and must be a
  regular file owned by the server's own user, writable by nobody else (no group or
  world write bit): a region is memory the server reads its inputs from and writes
  answers into, so another user's object, or one another user could change under a
  running request, is refused;
* a region lies within the object's size (checked at registration and again at each
  use, so an object shrunk meanwhile is a 400, not a bus error), and every
  ``offset``/``byte_size`` of a request lies within its region and matches the
  tensor's size;
* unregistering a region that requests still read drops only the registry's hold on
  the mapping: the memory stays mapped until the last view of it is gone, and a
  client that exits (or removes its object) leaves a valid mapping behind.

The model worker reads the same memory: a prediction's frame names where the input
lies (the server's descriptor of the object, ``/proc/PID/fd/FD``, with the object's
device and inode, an offset, a dtype and a shape) instead of carrying its bytes, and
the worker maps it itself (:mod:`tfaas_jupyter.worker.regions`), checking again.

Registering needs the owner's token or a key with the ``manage`` scope (the
handlers' ``key_scope``). No HTTP framework here: handlers/shm.py calls this.
"""

from __future__ import annotations

import errno
import math
import mmap
import os
import re
import stat
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import BadRequest, NotFound, TFaaSError

#: Where POSIX shared memory objects live (``shm_open("/name")`` is ``/dev/shm/name``).
SHM_DIR = "/dev/shm"
#: A region's name in the API, and an object's name after its leading slash.
REGION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
_KEY = re.compile(r"/?([A-Za-z0-9_][A-Za-z0-9_.\-]{0,254})")


class SharedMemoryOff(TFaaSError):
    """Client shared memory regions are turned off on this server (403)."""

    status = 403


class RegionArray(np.ndarray):
    """An input tensor that is a view of a registered region: ``source`` says where
    the model worker finds the same bytes (:func:`worker_frame`)."""

    source: tuple[str, int, int, int, int] | None = None

    def __array_finalize__(self, obj: Any) -> None:
        self.source = getattr(obj, "source", None)


@dataclass
class Region:
    """A registered region: ``byte_size`` bytes from ``offset`` in object ``key``."""

    name: str
    key: str
    offset: int
    byte_size: int
    #: the whole object, mapped (the mapping keeps its own descriptor: ``size()`` is
    #: the object's current size)
    memory: mmap.mmap
    #: the server's own descriptor of the object, which the model worker opens as
    #: ``/proc/PID/fd/FD`` (still there when the client has removed the object)
    fd: int
    #: (path for the worker, st_dev, st_ino, address of the mapping, its length)
    source: tuple[str, int, int, int, int]

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "offset": self.offset,
                "byte_size": self.byte_size}


def _count(value: Any, what: str, *, positive: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < int(positive):
        least = "1" if positive else "0"
        raise BadRequest(f"{what} must be a whole number of bytes, at least {least}")
    return value


def _open_object(key: Any) -> tuple[int, int]:
    """Open the shared memory object ``key`` for reading and writing: (fd, its size),
    or a 400 saying which rule it breaks."""
    match = _KEY.fullmatch(key) if isinstance(key, str) else None
    if match is None or match.group(1) in (".", ".."):
        raise BadRequest("'key' must name a shared memory object: '/name' (letters, digits, "
                         "'.', '_', '-'; no other slash)")
    path = os.path.join(SHM_DIR, match.group(1))
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadRequest(f"shared memory object {key!r} is a symbolic link; "
                             "regions must be the object itself") from None
        if exc.errno == errno.ENOENT:
            raise BadRequest(f"no shared memory object {key!r} (create it first)") from None
        raise BadRequest(f"cannot open shared memory object {key!r}: "
                         f"{exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BadRequest(f"shared memory object {key!r} is not a regular object")
        if info.st_uid != os.geteuid():
            raise BadRequest(f"shared memory object {key!r} belongs to another user "
                             f"(uid {info.st_uid}); a region must be the server user's own")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise BadRequest(f"shared memory object {key!r} is writable by other users "
                             f"(mode {stat.S_IMODE(info.st_mode):o}); make it 600")
        return fd, info.st_size
    except BaseException:
        os.close(fd)
        raise


class SharedMemoryRegions:
    """The server's registered system shared memory regions, by name."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._regions: dict[str, Region] = {}
        self._lock = threading.Lock()

    def _check_enabled(self) -> None:
        if not self.enabled:
            raise SharedMemoryOff("client shared memory regions are turned off on this server "
                                  "(TFaaSApp.allow_client_shm)")

    # -- the extension's API ------------------------------------------------------------

    def register(self, name: str, doc: Any) -> None:
        self._check_enabled()
        if not isinstance(name, str) or not REGION_NAME.fullmatch(name):
            raise BadRequest("a region's name is letters, digits, '.', '_', '-' (128 at most)")
        if not isinstance(doc, dict):
            raise BadRequest("register takes a JSON object with key, offset, byte_size")
        key = doc.get("key")
        offset = _count(doc.get("offset", 0), "'offset'")
        byte_size = _count(doc.get("byte_size"), "'byte_size'", positive=True)
        with self._lock:
            if name in self._regions:
                raise BadRequest(f"shared memory region {name!r} is already registered; "
                                 "unregister it first")
        fd, size = _open_object(key)
        try:
            if offset + byte_size > size:
                raise BadRequest(f"region {name!r}: offset {offset} + byte_size {byte_size} "
                                 f"runs past the end of {key!r} ({size} bytes)")
            memory = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            info = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        probe = np.frombuffer(memory, np.uint8, count=1)
        address = int(probe.ctypes.data)
        del probe
        source = (f"/proc/{os.getpid()}/fd/{fd}", info.st_dev, info.st_ino, address, size)
        region = Region(name, str(key), offset, byte_size, memory, fd, source)
        with self._lock:
            if name in self._regions:  # registered meanwhile by another request
                self._release(region)
                raise BadRequest(f"shared memory region {name!r} is already registered")
            self._regions[name] = region

    def unregister(self, name: str | None = None) -> None:
        """Drop region ``name`` (every region when None); an unknown name is no error,
        as in Triton."""
        with self._lock:
            if name is None:
                dropped, self._regions = list(self._regions.values()), {}
            else:
                one = self._regions.pop(name, None)
                dropped = [one] if one is not None else []
        for region in dropped:
            self._release(region)

    def status(self, name: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if name is None:
                return [r.status() for r in self._regions.values()]
            region = self._regions.get(name)
        if region is None:
            raise NotFound(f"no shared memory region {name!r} is registered")
        return [region.status()]

    def close(self) -> None:
        self.unregister(None)

    @staticmethod
    def _release(region: Region) -> None:
        """The registry's hold on a region: the mapping closed, unless a request still
        holds a view of it (then it goes with the last view)."""
        try:
            region.memory.close()
        except BufferError:
            pass
        os.close(region.fd)

    # -- infer requests --------------------------------------------------------------

    def view(self, params: dict[str, Any], what: str, nbytes: int | None = None) -> memoryview:
        """The bytes an input or output names in its ``parameters``: a writable view of
        the mapped region, checked to lie within it (and, with ``nbytes``, to be that
        long for an input)."""
        self._check_enabled()
        name = params.get("shared_memory_region")
        with self._lock:
            region = self._regions.get(name) if isinstance(name, str) else None
        if region is None:
            raise BadRequest(f"{what}: no shared memory region {name!r} is registered")
        offset = _count(params.get("shared_memory_offset", 0), f"{what}: shared_memory_offset")
        size = params.get("shared_memory_byte_size")
        size = region.byte_size - offset if size is None else _count(
            size, f"{what}: shared_memory_byte_size")
        if offset + size > region.byte_size:
            raise BadRequest(f"{what}: shared_memory_offset {offset} + byte_size {size} runs "
                             f"past region {name!r} ({region.byte_size} bytes)")
        if nbytes is not None and size != nbytes:
            raise BadRequest(f"{what}: its shape takes {nbytes} bytes, "
                             f"shared_memory_byte_size says {size}")
        start = region.offset + offset
        try:
            whole = memoryview(region.memory)  # held from here: the mapping stays open
            now = region.memory.size()
        except (OSError, ValueError):
            raise BadRequest(f"{what}: region {name!r} was unregistered") from None
        if start + size > now:  # the object was shrunk since: reading it would fault
            raise BadRequest(f"{what}: shared memory object {region.key!r} is now {now} "
                             "bytes, smaller than its region")
        return whole[start:start + size]

    def input_array(self, params: dict[str, Any], what: str, dtype: np.dtype,
                    shape: list[int]) -> np.ndarray:
        """An input tensor read in place from its region (a view, never a copy)."""
        if dtype.kind == "O":
            raise BadRequest(f"{what}: BYTES tensors are not taken from shared memory here; "
                             "send them as binary tensors")
        nbytes = math.prod(shape) * dtype.itemsize
        name = params.get("shared_memory_region")
        array = np.frombuffer(self.view(params, what, nbytes), dtype=dtype).reshape(shape)
        with self._lock:
            region = self._regions.get(name) if isinstance(name, str) else None
        if region is None:  # unregistered meanwhile: read by the server alone
            return array
        tagged = array.view(RegionArray)
        tagged.source = region.source
        return tagged

    def write_output(self, params: dict[str, Any], what: str, raw: memoryview) -> int:
        """Write an output's bytes into its region; answers how many."""
        target = self.view(params, what)
        if len(raw) > len(target):
            raise BadRequest(f"{what} is {len(raw)} bytes; its shared memory region holds "
                             f"{len(target)}")
        target[:len(raw)] = raw
        return len(raw)


def worker_frame(inputs: list[np.ndarray]) -> tuple[dict[str, Any], list[np.ndarray]]:
    """What a prediction's frame to the model worker carries: inputs that are views
    of a registered region go as where to find them (``{"regions": [...]}``, an entry
    per input, None for those sent), the others as arrays. An input counts as a view
    only when its memory lies inside the region's mapping (one made from it, by
    stacking for instance, does not)."""
    refs: list[dict[str, Any] | None] = []
    sent: list[np.ndarray] = []
    for array in inputs:
        source = getattr(array, "source", None)
        if source is not None and array.flags.c_contiguous and array.nbytes:
            path, dev, ino, address, length = source
            start = int(array.ctypes.data)
            if address <= start and start + array.nbytes <= address + length:
                refs.append({"path": path, "dev": dev, "ino": ino, "offset": start - address,
                             "dtype": array.dtype.str, "shape": list(array.shape)})
                continue
        refs.append(None)
        sent.append(np.asarray(array))
    if all(ref is None for ref in refs):
        return {}, sent
    return {"regions": refs}, sent


def region_parameters(params: dict[str, Any]) -> bool:
    """Whether an input's or output's parameters name a shared memory region."""
    return "shared_memory_region" in params
