"""Model names and versions that are safe to use as path components."""

from __future__ import annotations

import re

from .errors import BadRequest

#: Letters, digits, ``_`` and ``-``; at most 100 characters; no leading ``-``.
#: No dot, slash or NUL can pass, so a name never leaves the model directory.
MODEL_NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,99}"
_NAME_RE = re.compile(MODEL_NAME_PATTERN)


def check_model_name(name: object) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`BadRequest`."""
    if not isinstance(name, str) or not name:
        raise BadRequest("no model name is provided")
    if not _NAME_RE.fullmatch(name):
        shown = name if len(name) <= 60 else name[:60] + "..."
        raise BadRequest(
            f"invalid model name {shown!r}: use 1-100 letters, digits, '_' or '-' "
            "(not starting with '-')"
        )
    return name


def check_version(version: object) -> int | None:
    """Parse an optional model version: a positive integer, or None for the latest."""
    if version is None or version == "":
        return None
    if isinstance(version, bool):
        raise BadRequest("model version must be a positive integer")
    if isinstance(version, int):
        number = version
    elif isinstance(version, str) and version.isascii() and version.isdigit() and len(version) < 10:
        number = int(version)
    else:
        raise BadRequest(f"model version must be a positive integer, not {version!r}")
    if number < 1:
        raise BadRequest("model version must be a positive integer")
    return number
