"""Secrets written for the user instead of printed: a new key, a curl header file.

A notebook saves every printed line with the cell, so ``%tfaas`` writes secrets to
files only the user can read (mode 0600, in a folder of mode 0700, by default
``~/.tfaas``) and prints their paths. A path is never followed through a symlink, and
a key file is never overwritten: a key exists once, on the server as a hash and here.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import urllib.parse
from pathlib import Path

#: The folder of the files below, in the user's home.
DIR_NAME = ".tfaas"
KEYS = "keys"
HEADERS = "headers"


class SecretFileError(OSError):
    """A secret file could not be written where asked (the message says why)."""


def _private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner may enter (created with mode 0700); refused
    when it is a symlink or another user's."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise SecretFileError(f"{path} is not a folder (a symlink?); not writing a secret there")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise SecretFileError(f"{path} belongs to another user; not writing a secret there")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def secrets_dir(kind: str, home: Path | None = None) -> Path:
    """``~/.tfaas/KIND`` (``keys`` or ``headers``), both folders of mode 0700."""
    base = _private_dir((home or Path.home()) / DIR_NAME)
    return _private_dir(base / kind)


def key_path(name: str, save: str | None = None) -> Path:
    """Where ``%tfaas key create NAME`` writes the key: ``save``, or
    ``~/.tfaas/keys/NAME.key``. Refused (before the key is created) when a file is there."""
    if save:
        path = Path(save).expanduser().absolute()
    else:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise SecretFileError(f"key name {name!r} is no file name; give --save PATH")
        path = secrets_dir(KEYS) / f"{name}.key"
    if os.path.lexists(path):
        raise SecretFileError(
            f"{path} exists: not overwriting a key file (revoke that key and delete the "
            "file, or give --save PATH)"
        )
    return path


def write_new(path: Path, text: str) -> Path:
    """Write ``text`` to a new file ``path`` of mode 0600 (never over an existing one,
    never through a symlink)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def write_header_file(server_url: str, header: str) -> Path:
    """A curl header file (``curl -H @FILE``) holding ``header`` for ``server_url``, in
    ``~/.tfaas/headers``: one per server, replaced whole (a new file renamed over it)."""
    parts = urllib.parse.urlsplit(server_url)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", parts.netloc + parts.path).strip("-") or "server"
    folder = secrets_dir(HEADERS)
    path = folder / f"{slug}.header"
    tmp = write_new(folder / f".{slug}.{secrets.token_hex(4)}.tmp", header + "\n")
    os.replace(tmp, path)
    return path
