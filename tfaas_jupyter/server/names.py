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


#: What a version number is (the routes' pattern too: 1 to 9 digits).
VERSION_RULE = "a positive integer of at most 9 digits"
_MAX_VERSION = 999_999_999


def check_version(version: object) -> int | None:
    """Parse an optional model version: a positive integer, or None for the latest."""
    if version is None or version == "":
        return None
    if isinstance(version, bool):
        raise BadRequest(f"model version must be {VERSION_RULE}")
    if isinstance(version, int):
        number = version
    elif isinstance(version, str) and version.isascii() and version.isdigit() and len(version) < 10:
        number = int(version)
    else:
        shown = repr(version) if len(repr(version)) <= 40 else repr(version)[:40] + "..."
        raise BadRequest(f"model version must be {VERSION_RULE}, not {shown}")
    if not 1 <= number <= _MAX_VERSION:
        raise BadRequest(f"model version must be {VERSION_RULE}")
    return number


#: A version label: letters, digits, ``_`` and ``-``, not all digits (those are versions).
_LABEL_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,99}")


def check_label(label: object) -> str:
    """Return ``label`` if it is a valid version label, else raise :class:`BadRequest`."""
    if not isinstance(label, str) or not _LABEL_RE.fullmatch(label) or label.isdigit():
        shown = label if not isinstance(label, str) or len(label) <= 60 else label[:60] + "..."
        raise BadRequest(
            f"invalid version label {shown!r}: use 1-100 letters, digits, '_' or '-', "
            "not only digits"
        )
    return label


def check_version_or_label(version: object) -> int | str | None:
    """A version number, a version label, or None (the latest)."""
    if isinstance(version, str) and version and not version.isdigit():
        return check_label(version)
    return check_version(version)
