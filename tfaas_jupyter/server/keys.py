"""TFaaS keys: credentials that may only call the TFaaS routes their scopes allow.

A Jupyter token opens kernels and terminals; a key opens predictions (scope
``predict``, the default) and, when asked for, the model repository (scope
``manage``: upload, delete, models, params), for all models or a named few, and
nothing else: never Jupyter's own API, never the keys themselves.

A key is ``tfk_`` followed by 43 random URL-safe characters (256 bits). The store
keeps, per key, a random salt and ``sha256(salt + key)``, never the key; a presented
key is checked against every stored hash with :func:`hmac.compare_digest`. The file
is JSON, mode 0600, rewritten atomically under an ``flock`` so several server
processes of one user can share it; each process re-reads it when it changes, so a
revocation holds at once everywhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import BadRequest, Forbidden, NotFound, TFaaSError

#: Every key starts with this, so a server tells a key from a Jupyter token at a glance.
KEY_PREFIX = "tfk_"
#: A key as it may appear in a URL or a header (the secret is URL-safe base64).
KEY_PATTERN = r"tfk_[A-Za-z0-9_\-]{20,200}"
_KEY_RE = re.compile(KEY_PATTERN)

PREDICT, MANAGE = "predict", "manage"
SCOPES = (PREDICT, MANAGE)

#: A key's name: letters, digits, ``.``, ``_``, ``-``; at most 100 characters.
KEY_NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}"
_NAME_RE = re.compile(KEY_NAME_PATTERN)
#: How often (seconds) a key's last-used time is written back to the file.
LAST_USED_WRITE_INTERVAL = 60.0


def looks_like_key(credential: str | None) -> bool:
    """Whether a presented credential is meant as a TFaaS key (not a Jupyter token)."""
    return bool(credential) and credential.startswith(KEY_PREFIX)  # type: ignore[union-attr]


@dataclass(frozen=True)
class Grant:
    """What one key may do: its name, scopes and models (None: every model)."""

    name: str
    scopes: frozenset[str]
    models: tuple[str, ...] | None

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models


def check_model_access(grant: Grant | None, model: str) -> None:
    """Refuse (403) a model that ``grant``, the grant of the request's key, does not
    cover (None: a Jupyter login, which reaches every model)."""
    if grant is not None and not grant.allows_model(model):
        raise Forbidden(f"key {grant.name!r} does not cover model {model!r}")


def may_see_model(grant: Grant | None, model: str) -> bool:
    """Whether a request with ``grant`` (None: a Jupyter login) may see ``model`` in a
    listing."""
    return grant is None or grant.allows_model(model)


def _hash(salt: bytes, key: str) -> str:
    return hashlib.sha256(salt + key.encode("utf-8")).hexdigest()


def _now() -> float:
    return round(time.time(), 3)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise BadRequest(
            "a key needs a 'name' of 1-100 letters, digits, '.', '_' or '-' "
            "(not starting with '.' or '-')"
        )
    return name


def _check_models(models: object) -> list[str] | None:
    from .names import check_model_name

    if models is None:
        return None
    if not isinstance(models, list) or not models:
        raise BadRequest("'models' must be a non-empty list of model names (omit it for all)")
    return sorted({check_model_name(m) for m in models})


def _check_scopes(scopes: object) -> list[str]:
    if scopes is None:
        return [PREDICT]
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise BadRequest(f"'scopes' must be a non-empty list of {', '.join(SCOPES)}")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise BadRequest(
            f"unknown scope(s) {', '.join(map(repr, unknown[:5]))}: use {', '.join(SCOPES)}"
        )
    return sorted(set(scopes))


class KeyStore:
    """The keys of one user, in one JSON file (see the module's docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._records: dict[str, dict[str, Any]] = {}
        self._stamp: tuple[int, int, int] | None = None
        #: name -> last-used time not yet written to the file
        self._last_used: dict[str, float] = {}
        self._last_write = 0.0

    # -- the file ----------------------------------------------------------------

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        """Re-read the file when another process (or this one) has rewritten it."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        self._records = self._read() if stamp is not None else {}
        self._stamp = stamp

    def _read(self) -> dict[str, dict[str, Any]]:
        fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid != os.geteuid() or st.st_mode & 0o077:
                raise TFaaSError(
                    f"refusing the keys file {self.path}: it must belong to this user "
                    f"with mode 0600 (it has mode {st.st_mode & 0o777:04o})", 409
                )
            try:
                doc = json.loads(f.read() or b"{}")
            except ValueError:
                raise TFaaSError(f"the keys file {self.path} is not valid JSON", 409) from None
        keys = doc.get("keys") if isinstance(doc, dict) else None
        return {r["name"]: r for r in keys or [] if isinstance(r, dict) and "name" in r}

    def _write(self, records: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "keys": list(records.values())}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._records = records
        self._stamp = self._file_stamp()
        self._last_write = time.monotonic()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The current records, read and rewritten under an exclusive lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = os.open(self.path.with_name(self.path.name + ".lock"),
                       os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._stamp = None
            self._refresh()
            records = {name: dict(r) for name, r in self._records.items()}
            for name, used in self._last_used.items():
                if name in records:
                    records[name]["last_used"] = max(used, records[name].get("last_used") or 0)
            self._last_used.clear()
            yield records
            self._write(records)
        finally:
            os.close(lock)

    # -- the API -----------------------------------------------------------------

    @staticmethod
    def public(record: dict[str, Any]) -> dict[str, Any]:
        """A key's metadata as the API shows it (never the salt or the hash)."""
        return {
            "name": record["name"],
            "models": record.get("models"),
            "scopes": record.get("scopes") or [PREDICT],
            "created": record.get("created"),
            "last_used": record.get("last_used"),
        }

    def create(self, name: object, models: object = None, scopes: object = None
               ) -> tuple[str, dict[str, Any]]:
        """A new key: (the key itself, shown only now; its public metadata)."""
        name = _check_name(name)
        record_models = _check_models(models)
        record_scopes = _check_scopes(scopes)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        with self._locked() as records:
            if name in records:
                raise BadRequest(f"a key named {name!r} exists; revoke it first")
            records[name] = {
                "name": name, "models": record_models, "scopes": record_scopes,
                "created": _now(), "last_used": None,
                "salt": salt.hex(), "sha256": _hash(salt, key),
            }
        return key, self.public(records[name])

    def list(self) -> list[dict[str, Any]]:
        self._refresh()
        return [self.public(self._merged(r)) for _, r in sorted(self._records.items())]

    def get(self, name: str) -> dict[str, Any]:
        self._refresh()
        record = self._records.get(name)
        if record is None:
            raise NotFound(f"no key named {name!r}")
        return self.public(self._merged(record))

    def revoke(self, name: str) -> dict[str, Any]:
        with self._locked() as records:
            record = records.pop(name, None)
            if record is None:
                raise NotFound(f"no key named {name!r}")
        return self.public(record)

    def _merged(self, record: dict[str, Any]) -> dict[str, Any]:
        used = self._last_used.get(record["name"])
        if used is None:
            return record
        return {**record, "last_used": max(used, record.get("last_used") or 0)}

    def verify(self, key: str) -> Grant | None:
        """The grant of a presented key, or None when it is unknown or revoked."""
        try:
            self._refresh()
        except (OSError, TFaaSError):  # an unreadable or refused file grants nothing
            return None
        if not _KEY_RE.fullmatch(key):
            return None
        found = None
        for record in self._records.values():  # every hash is compared: no early exit
            try:
                salt = bytes.fromhex(record["salt"])
                expected = record["sha256"]
            except (KeyError, TypeError, ValueError):
                continue
            if hmac.compare_digest(_hash(salt, key), str(expected)) and found is None:
                found = record
        if found is None:
            return None
        self._last_used[found["name"]] = _now()
        if time.monotonic() - self._last_write > LAST_USED_WRITE_INTERVAL:
            with contextlib.suppress(OSError), self._locked():
                pass
        models = found.get("models")
        return Grant(
            name=found["name"],
            scopes=frozenset(found.get("scopes") or [PREDICT]),
            models=tuple(models) if models is not None else None,
        )
