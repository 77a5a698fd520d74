"""Reading a prediction's input from a file, for ``tfaas --predict FILE``.

Whatever the file holds, the answer is a /json request document (``{"model", "keys"?,
"values"}``); how the client then sends it is the client's business. Accepted:

- JSON: the original's object ``{"keys", "values", "model"}``, a bare row
  ``[1.0, 2.0, ...]`` or a list of rows ``[[...], [...]]``;
- ``.npy``: one array (a row, or rows), sent with its own dtype;
- ``.csv``: one row per line; a first line that is not all numbers names the keys.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["InputFileError", "read_input"]


class InputFileError(ValueError):
    """The file cannot be read as a prediction's input (the message says why)."""


def _number(text: str) -> int | float:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


def _is_number(text: str) -> bool:
    try:
        _number(text)
    except ValueError:
        return False
    return True


def _read_csv(text: str, file: Path) -> dict[str, Any]:
    lines = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not lines:
        raise InputFileError(f"input file {file} holds no rows")
    keys = None
    if not all(_is_number(cell) for cell in lines[0]):
        keys, lines = [cell.strip() for cell in lines[0]], lines[1:]
        if not lines:
            raise InputFileError(f"input file {file} has a header but no rows")
    try:
        rows = [[_number(cell) for cell in row] for row in lines]
    except ValueError as exc:
        raise InputFileError(f"input file {file}: {exc}") from None
    doc: dict[str, Any] = {"values": rows[0] if len(rows) == 1 else rows}
    if keys is not None:
        doc["keys"] = keys
    return doc


def read_input(path: str | Path) -> dict[str, Any]:
    """The /json request that ``path`` holds (no ``model`` unless the file names it)."""
    file = Path(path).expanduser()
    try:
        if file.suffix.lower() == ".npy":
            try:
                array = np.load(file, allow_pickle=False)
            except ValueError as exc:
                raise InputFileError(f"input file {file} is not a numeric .npy: {exc}") from None
            if array.dtype.kind not in "biuf" or array.ndim not in (1, 2):
                raise InputFileError(f"input file {file} must hold a row or rows of numbers, "
                                     f"not a {array.ndim}-d {array.dtype} array")
            return {"values": array}
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(f"input file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read input file {file}: {exc}") from None
    if file.suffix.lower() == ".csv":
        return _read_csv(text, file)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InputFileError(f"input file {file} is not valid JSON: {exc}") from None
    if isinstance(doc, list):
        return {"values": doc}
    if isinstance(doc, dict):
        return doc
    raise InputFileError(f"input file {file} must hold a JSON object, a row or a list of rows")
