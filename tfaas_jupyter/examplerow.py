"""An example request for a model, as every printed example shows it (the ``tfaas/``
page, ``%tfaas curl``, ``%tfaas key create``, the model browser's Copy curl).

The row is a real one, so a line pasted into a shell works as printed: the model's own
example when its params.json gives one (``"example"``: a row, or ``{"keys", "values"}``),
else zeros as wide as the model's inputs (all flattened, one after the other), each of
its input's kind (``0`` for an integer input, ``0.0`` otherwise). Plain Python on a
model's description (``/models``): no imports of the package's sides, so the server's
page and the client's magics share it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["example_request", "example_row", "input_width", "tensor_width"]

_INTEGER_DTYPES = ("int", "uint")


def tensor_width(spec: dict[str, Any]) -> int | None:
    """Values per row of one tensor (None: a dimension is not fixed)."""
    size = 1
    for dim in list(spec.get("shape") or [])[1:]:
        if not isinstance(dim, int) or dim < 0:
            return None
        size *= dim
    return size


def input_width(model: dict[str, Any] | None) -> int | None:
    """How many values one row of ``model`` takes (all inputs flattened), or None when a
    dimension is unknown."""
    widths = [tensor_width(spec) for spec in (model or {}).get("inputs") or []]
    if not widths or None in widths:
        return None
    return sum(w or 0 for w in widths) or None


def _zeros(model: dict[str, Any], width: int) -> list[int | float]:
    row: list[int | float] = []
    inputs = model.get("inputs") or []
    for spec in inputs:
        zero: int | float = 0 if str(spec.get("dtype") or "").startswith(_INTEGER_DTYPES) else 0.0
        row += [zero] * (tensor_width(spec) or 0)
    return row if len(row) == width else [0.0] * width


def _own_example(model: dict[str, Any], width: int | None) -> dict[str, Any] | None:
    """params.json's ``example``, when it is a row (or ``{"keys", "values"}``) that fits."""
    given = model.get("example")
    doc = given if isinstance(given, dict) else {"values": given}
    values = doc.get("values")
    if not isinstance(values, list) or not values or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    if width is not None and len(values) != width:
        return None
    keys = doc.get("keys")
    if isinstance(keys, list) and len(keys) != len(values):
        return None
    return {"keys": [str(k) for k in keys], "values": values} if isinstance(keys, list) \
        else {"values": values}


def example_row(model: dict[str, Any] | None) -> tuple[list[str] | None, list[int | float]]:
    """(keys, one row) for ``model``: its own example, else zeros of its width (the
    number of its ``keys`` when its inputs do not say; one value when nothing does)."""
    model = model or {}
    keys = model.get("keys")
    keys = [str(k) for k in keys] if isinstance(keys, list) and keys else None
    width = input_width(model)
    own = _own_example(model, width)
    if own is not None:
        return own.get("keys") or (keys if keys and len(keys) == len(own["values"]) else None), \
            own["values"]
    if width is None:
        width = len(keys) if keys else 1
    if keys and len(keys) != width:
        keys = None
    return keys, _zeros(model, width)


def example_request(name: str, model: dict[str, Any] | None) -> dict[str, Any]:
    """A valid /json request for ``model``: ``{"model", "keys"?, "values"}``."""
    keys, row = example_row(model)
    doc: dict[str, Any] = {"model": name}
    if keys:
        doc["keys"] = keys
    doc["values"] = row
    return doc
