"""Shared memory between the client and a server on the same machine and user.

When the kernel and the Jupyter server run on the same node (SWAN, a laptop), the
rows need not cross a socket at all: the client writes them once into a POSIX shared
memory object of its own (``/dev/shm``, mode 600), registers it as a region of the
server (Triton's system shared memory extension, ``v2/systemsharedmemory``) and names
the region in its infer requests; the server reads the rows in place.

Whether that works is found out once per client by a probe: a small region that
the server must accept (same machine, same user, regions allowed, a token that may
register them). Anything else, and :meth:`TFaaSClient.predict` sends binary tensors.
"""

from __future__ import annotations

import ipaddress
import mmap
import os
import socket
import uuid
from typing import Any

#: Where POSIX shared memory objects live on Linux.
SHM_DIR = "/dev/shm"


def may_share_memory(host: str) -> bool:
    """Whether a server at ``host`` may be on this machine: a loopback address, or
    this machine's own name (a hub's node, reached by its hostname)."""
    if not os.path.isdir(SHM_DIR):
        return False
    name = host.strip("[]").lower()
    if name in ("localhost", "localhost.localdomain"):
        return True
    try:
        if ipaddress.ip_address(name).is_loopback:
            return True
    except ValueError:
        pass
    own = {socket.gethostname().lower(), socket.getfqdn().lower()}
    if name in own:
        return True
    try:  # an address of this machine: the one a connection to it leaves from
        address = socket.gethostbyname(name)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((address, 9))
            return bool(probe.getsockname()[0] == address)
    except OSError:
        return False


class Region:
    """A shared memory object of this process, mapped: ``key`` names it for the
    server (``/name``), ``name`` is its region name there. Removed by :meth:`close`."""

    def __init__(self, byte_size: int, prefix: str = "tfaas") -> None:
        token = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.name = token
        self.key = f"/{token}"
        self.byte_size = max(1, byte_size)
        self._path = os.path.join(SHM_DIR, token)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, self.byte_size)
            self.memory = mmap.mmap(fd, self.byte_size, mmap.MAP_SHARED,
                                    mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            os.unlink(self._path)
            raise
        os.close(fd)

    def register_doc(self) -> dict[str, Any]:
        return {"key": self.key, "offset": 0, "byte_size": self.byte_size}

    def close(self) -> None:
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass
        try:
            self.memory.close()
        except BufferError:  # a view of it is still alive: it goes with the view
            pass

    def __enter__(self) -> Region:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
