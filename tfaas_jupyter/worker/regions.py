"""Inputs the server left in a shared memory region: mapped here, read in place.

A prediction's frame may carry ``"regions"``: per input, None (its bytes are in the
frame) or where the server found it in a client's registered region
(:func:`tfaas_jupyter.server.shm.worker_frame`): ``path`` (the server's own
descriptor of the object, ``/proc/PID/fd/FD``, valid even after the client removed
the object), the object's ``dev`` and ``ino``, ``offset``, ``dtype`` and ``shape``.

The object is opened and checked again here (the same object, a regular file of
this user, large enough for the tensor, so reading it cannot fault) and mapped
read-only for this one request: the mapping goes with the request's last view, so
a region unregistered or a client gone leaves nothing mapped in the worker.
Numpy only: no TensorFlow.
"""

from __future__ import annotations

import math
import mmap
import os
import stat
from typing import Any

import numpy as np


class RegionError(Exception):
    """An input's region cannot be read (gone, changed, too small)."""


def _mapped(ref: dict[str, Any]) -> np.ndarray:
    try:
        dtype = np.dtype(str(ref["dtype"]))
        shape = [int(d) for d in ref["shape"]]
        offset = int(ref["offset"])
        path = str(ref["path"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RegionError(f"a malformed region reference ({exc})") from None
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise RegionError(f"the shared memory region is gone ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if ((info.st_dev, info.st_ino) != (ref.get("dev"), ref.get("ino"))
                or not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()):
            raise RegionError("the shared memory region was replaced meanwhile")
        if offset < 0 or dtype.kind == "O" or offset + nbytes > info.st_size:
            raise RegionError(f"the tensor ({nbytes} bytes at {offset}) lies beyond the "
                              f"shared memory object ({info.st_size} bytes)")
        if nbytes == 0:
            return np.empty(shape, dtype=dtype)
        memory = mmap.mmap(fd, info.st_size, mmap.MAP_SHARED, mmap.PROT_READ)
    finally:
        os.close(fd)
    return np.frombuffer(memory, dtype=dtype, count=count, offset=offset).reshape(shape)


def region_inputs(refs: Any, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The request's inputs in order: those in the frame, and those in regions."""
    if not isinstance(refs, list):
        raise RegionError("'regions' must be a list")
    sent = iter(arrays)
    inputs = []
    for ref in refs:
        if ref is None:
            try:
                inputs.append(next(sent))
            except StopIteration:
                raise RegionError("fewer arrays than the regions list says") from None
        else:
            inputs.append(_mapped(ref))
    return inputs
