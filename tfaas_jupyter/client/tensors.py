"""Rows of numbers as a model's V2 input tensors, and its output tensors as rows.

:meth:`TFaaSClient.predict` sends a big numeric array as binary tensors of the Open
Inference Protocol rather than as JSON. The server's ``/json`` route maps each row's
values onto the model's inputs (keys reordered after params.json, values cut per
input, each cast to its input's dtype exactly or refused); :func:`input_tensors` does
the same here, from the model's V2 metadata, and answers None whenever the result
could differ from what the JSON route would do (the request then goes as JSON, and
the server says what is wrong with it). :func:`output_rows` gives the outputs back as
:meth:`TFaaSClient.predict` answers JSON ones: int64 (uint64 above 2**63) when every
output is an integer, else float64.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..v2binary import V2_DTYPES


def _exact_cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray | None:
    """``values`` as ``dtype`` by the server's rules for JSON numbers (nearest float,
    whole numbers within range for an integer, non-zero for a boolean), or None where
    the server would refuse them."""
    if values.dtype == dtype:
        return values
    kind, source = dtype.kind, values.dtype.kind
    if kind == "b":
        return np.asarray(values != 0)
    if kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            cast = values.astype(dtype)
        if source == "f" and not np.isfinite(cast).all():
            return None
        return cast
    if kind in "iu":
        info = np.iinfo(dtype)
        if values.size == 0:
            return values.astype(dtype)
        if source in "iub":
            if int(values.min()) < info.min or int(values.max()) > info.max:
                return None
            return values.astype(dtype)
        with np.errstate(invalid="ignore"):
            whole = ((values >= info.min) & (values < float(info.max) + 1)
                     & (values == np.floor(values)))
        if not whole.all():
            return None
        return values.astype(dtype)
    return None


def input_tensors(metadata: dict[str, Any], rows: np.ndarray, keys: Sequence[str] | None,
                  model_keys: Sequence[str] | None) -> list[tuple[str, np.ndarray]] | None:
    """The model's inputs for 2-D numeric ``rows`` whose columns are named ``keys``:
    (name, array) in the model's order, or None when binary tensors cannot carry them
    exactly as the ``/json`` route would."""
    if keys is not None and model_keys:
        position = {str(k): i for i, k in enumerate(keys)}
        if len(position) != len(keys) or set(position) != {str(k) for k in model_keys} \
                or len(model_keys) != len(keys):
            return None
        order = [position[str(k)] for k in model_keys]
        if order != list(range(len(order))):
            rows = rows[:, order]
    specs = metadata.get("inputs") or []
    if not specs:
        return None
    n_rows, n_values = rows.shape
    sizes: list[int] = []
    dims_of: list[list[int]] = []
    for spec in specs:
        shape = spec.get("shape")
        dtype = V2_DTYPES.get(spec.get("datatype"))
        if not isinstance(shape, list) or not shape or dtype is None or dtype.kind == "O":
            return None
        dims = [int(d) for d in shape[1:]]
        if any(d < 0 for d in dims):
            if len(specs) != 1 or len(shape) != 2:
                return None
            dims = [n_values]
        dims_of.append(dims)
        sizes.append(math.prod(dims))
    if sum(sizes) != n_values:
        return None
    tensors, start = [], 0
    for spec, dims, size in zip(specs, dims_of, sizes):
        part = rows if len(specs) == 1 else rows[:, start:start + size]
        cast = _exact_cast(part, V2_DTYPES[spec["datatype"]])
        if cast is None:
            return None
        tensors.append((str(spec["name"]), np.ascontiguousarray(cast).reshape(n_rows, *dims)))
        start += size
    return tensors


def output_rows(outputs: Sequence[np.ndarray], n_rows: int) -> np.ndarray:
    """The outputs side by side, one row per input row: int64 when every output is an
    integer (uint64 when one is beyond int64), else float64, which holds float32 and
    float16 exactly."""
    if not outputs:
        raise ValueError("the model answered no outputs")
    tables = []
    for out in outputs:
        if out.ndim == 0 or out.shape[0] != n_rows:
            raise ValueError(f"an output has shape {out.shape}, not one row per input row "
                             f"({n_rows})")
        tables.append(out.reshape(n_rows, -1))
    if all(t.dtype.kind in "biu" for t in tables):
        big = any(t.dtype == np.uint64 and t.size and t.max() > np.iinfo(np.int64).max
                  for t in tables)
        dtype: np.dtype = np.dtype(np.uint64 if big else np.int64)
    else:
        dtype = np.dtype(np.float64)
    if len(tables) == 1:
        return tables[0].astype(dtype)
    return np.concatenate([t.astype(dtype, copy=False) for t in tables], axis=1)
