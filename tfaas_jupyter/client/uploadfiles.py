"""Which picked file is a model, its params.json and its labels.txt, by how its name ends.

``upload_files.json`` beside this module is the one list of those endings: the notebook
widget reads it here, the JupyterLab panel's build imports the same file
(labextension/src/upload.ts), so both pickers accept the same files and name them in
the same words.
"""

from __future__ import annotations

import json
from importlib.resources import files
from types import MappingProxyType
from typing import Mapping

__all__ = ["ACCEPT", "ROLES", "SUFFIXES", "role_of", "model_suffix", "suffixes_text"]

#: The roles of an upload's files, in the order the picker lists them.
ROLES = ("model", "params", "labels")

#: Each role's file name endings, as upload_files.json holds them.
SUFFIXES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    role: tuple(endings) for role, endings in json.loads(
        files(__package__).joinpath("upload_files.json").read_text(encoding="utf-8")).items()
})

#: The file picker's ``accept``: every ending of every role.
ACCEPT = ",".join(ending for role in ROLES for ending in SUFFIXES[role])


def _ending(filename: str, endings: tuple[str, ...]) -> str | None:
    lower = filename.lower()
    return next((ending for ending in endings if lower.endswith(ending)), None)


def model_suffix(filename: str) -> str | None:
    """The model file ending ``filename`` has (``.tar.gz``), or None."""
    return _ending(filename, SUFFIXES["model"])


def role_of(filename: str) -> str | None:
    """``model``, ``params`` or ``labels`` for a file of that kind, else None."""
    return next((role for role in ROLES if _ending(filename, SUFFIXES[role])), None)


def suffixes_text() -> dict[str, str]:
    """Each role's endings for the vocabulary's ``{model}``, ``{params}``, ``{labels}``:
    ``.keras, .tar.gz, ...``."""
    return {role: ", ".join(SUFFIXES[role]) for role in ROLES}
