"""The words the model browser widget and the JupyterLab panel both show.

``vocabulary.json`` beside this module is their one source: the widget reads it here,
the panel's build imports the same file (labextension/src/words.ts). A word with
``{placeholders}`` is filled by :func:`word` here and by ``word()`` there, alike.
"""

from __future__ import annotations

import json
from importlib.resources import files
from types import MappingProxyType
from typing import Mapping

__all__ = ["WORDS", "word"]

#: Every word, by key, as vocabulary.json holds it.
WORDS: Mapping[str, str] = MappingProxyType(
    json.loads(files(__package__).joinpath("vocabulary.json").read_text(encoding="utf-8")))


def word(key: str, **values: object) -> str:
    """The word ``key`` with its ``{placeholders}`` filled from ``values``."""
    return WORDS[key].format(**values)
