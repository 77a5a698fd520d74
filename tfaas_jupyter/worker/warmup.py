"""Warm-up: a just-loaded model runs on a warm-up batch of each size the batcher can
send it before any request is served from it.

The first call of a model's function at a batch size pays one-off costs (the
function's instantiation and graph optimisation, kernel selection, the allocator's
growth; a control-flow model's switch to the default executor). The worker runs the
warm-up before the model enters its cache, so a prediction for it waits on the
load's per-key lock rather than meeting a cold model: no user request pays them.

The batch is the model's own example row (params.json ``"example"``: a list of
numbers, all inputs flattened one after the other, or ``{"values": [...]}`` without
``keys``), repeated; else zeros of each input's shape and dtype.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np


def _example_values(params: dict[str, Any]) -> list[float] | None:
    given = params.get("example")
    if isinstance(given, dict):
        if given.get("keys") is not None:
            return None  # keys in another order than the inputs': the server's shaping
        given = given.get("values")
    if isinstance(given, list) and given and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in given):
        return [float(v) for v in given]
    return None


def warmup_batch(inputs: Sequence[dict[str, Any]], params: dict[str, Any],
                 rows: int) -> list[np.ndarray] | None:
    """One array per input of ``rows`` rows: the example row when it fits the inputs,
    else zeros; None when an input's shape is not known beyond its batch dimension."""
    shapes = []
    for info in inputs:
        shape = info.get("shape")
        if not shape or any(d is None or d < 0 for d in shape[1:]):
            return None
        shapes.append([int(d) for d in shape[1:]])
    widths = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    example = _example_values(params)
    if example is not None and len(example) != sum(widths):
        example = None
    batch, start = [], 0
    for info, shape, width in zip(inputs, shapes, widths):
        dtype = np.dtype(info["dtype"])
        if example is None:
            batch.append(np.zeros([rows, *shape], dtype=dtype))
            continue
        row = np.asarray(example[start:start + width]).astype(dtype, casting="unsafe")
        batch.append(np.ascontiguousarray(np.broadcast_to(row.reshape(shape), [rows, *shape])))
        start += width
    return batch


def warm_up(predictor: Any, params: dict[str, Any], sizes: Sequence[int]) -> float | None:
    """Run ``predictor`` once on a warm-up batch of each of ``sizes`` rows; answers the
    seconds it took (None: nothing to run, an input's shape is not known)."""
    began = time.perf_counter()
    ran = False
    for rows in sorted({max(1, int(n)) for n in sizes}):
        batch = warmup_batch(predictor.inputs, params, rows)
        if batch is None:
            return None
        predictor.predict(batch)
        ran = True
    return time.perf_counter() - began if ran else None
