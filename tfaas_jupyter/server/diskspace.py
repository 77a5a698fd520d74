"""A full disk under the model repository, as the API reports it: 507 naming the space
the operation needed and the space the filesystem has.

The one place that recognises a full disk (``ENOSPC``, or ``EDQUOT`` for a quota) and
words its error; the upload handler, the upload service and the repository call it
wherever they write.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import TFaaSError

__all__ = ["DiskFull", "disk_full_error", "is_disk_full", "repository_writes"]


class DiskFull(TFaaSError):
    """The model repository's filesystem has no room for what was being written."""

    status = 507


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is the filesystem saying it is full (or the user's quota is)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _size(n: int) -> str:
    return f"{n} bytes ({n / 2**20:.1f} MiB)"


def disk_full_error(root: Path, action: str, *, needed: int, freed: int = 0,
                    at_least: bool = False) -> DiskFull:
    """The 507 for ``action`` failing on a full disk under ``root``.

    ``needed``: the bytes the operation needs (``at_least``: a lower bound, when the
    end was not known); ``freed``: what the failed operation holds and is about to
    remove, counted as free (the room a retry has). Sizes are rounded up to the
    filesystem's block size, its unit of allocation."""
    try:
        fs = os.statvfs(root)
        block = fs.f_frsize or 4096
        free = fs.f_bavail * block
    except OSError:
        block, free = 4096, 0
    needed = math.ceil(max(needed, 1) / block) * block
    free += math.ceil(freed / block) * block if freed else 0
    return DiskFull(
        f"cannot {action}: no space left in the model repository {root}: it needs "
        f"{'more than ' if at_least else ''}{_size(needed)}, and its disk has "
        f"{_size(free)} free"
    )


@contextlib.contextmanager
def repository_writes(root: Path, action: str, needed: int = 1, freed: int = 0) -> Iterator[None]:
    """Turn a filesystem refusal to write into an API error that says so (not a 500);
    a full disk is a 507 naming ``needed`` bytes and the free space (``freed``: what
    the caller removes on failure, counted as free)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            what = "is read-only" if exc.errno == errno.EROFS else "is not writable"
            raise TFaaSError(
                f"cannot {action}: the model repository {root} {what} ({exc.strerror})", 403
            ) from None
        if is_disk_full(exc):
            raise disk_full_error(root, action, needed=needed, freed=freed) from None
        raise
