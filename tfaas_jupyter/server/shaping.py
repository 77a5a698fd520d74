"""Input shaping: from a request's numbers to the arrays a model's inputs take.

A ``/json`` or ``/proto`` request carries rows of values (and maybe their keys); a
model has inputs with names, shapes and dtypes (its signature, as the worker reports
it). This module maps one onto the other: the keys onto the order ``params.json``
lists (:meth:`Shaper.key_order`), each row's values onto the inputs
(:func:`input_plan`, :func:`split_rows`), the values onto each input's dtype exactly
or with a clear 400 (:func:`as_input`), and an ``/image`` upload onto the image input
(:func:`image_layout`). It also checks the outputs the model gives back
(:func:`output_rows`). Pure numpy: no HTTP, no TensorFlow, no worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import BadRequest, ErrorKind, WorkerError

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)

#: From this magnitude on, a float64 may be a rounded integer (2**53 + 1 reads as 2**53).
FLOAT64_EXACT_INTS = 2**53

#: Cached key orders and input plans kept at most (the caches are cleared beyond it).
_MAX_CACHED = 1024


def numpy_dtype(name: Any) -> np.dtype:
    """The numpy dtype of a signature's input (float32 when unknown or not numeric)."""
    try:
        dtype = np.dtype(name or "float32")
    except TypeError:  # e.g. bfloat16, which only the worker's TensorFlow knows
        return _F32
    return dtype if dtype.kind in "fiub" else _F32


def as_input(values: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    """``values`` as input ``name``'s ``dtype``, exactly, or a 400 saying why not.

    ``values`` are what the codecs decoded: int64 (or uint64) when a JSON request had
    integers only and some beyond 2**53, else float64 (JSON) or float32 (proto).

    * an integer input takes whole numbers within its range, never truncated nor
      wrapped around; a float64 of 2**53 or more is refused, since it may already be
      rounded (the request has fractions too, so its numbers were read as floats);
    * a float input takes the nearest value of its dtype, which must be finite
      (1e39 is no float32);
    * a boolean input takes zero as false, anything else as true.
    """
    kind = dtype.kind
    if kind in "iu":
        info = np.iinfo(dtype)
        span = f"input {name!r} takes whole numbers from {info.min} to {info.max}"
        if values.dtype.kind in "iub":
            if values.size and (int(values.min()) < info.min or int(values.max()) > info.max):
                raise BadRequest(span)
            return np.ascontiguousarray(values, dtype=dtype)
        whole = (values >= info.min) & (values < float(info.max) + 1) & (values == np.floor(values))
        if not whole.all():
            raise BadRequest(span)
        if (values.dtype.itemsize >= 8 and info.bits > 53
                and (np.abs(values) >= FLOAT64_EXACT_INTS).any()):
            raise BadRequest(
                f"input {name!r} takes integers, and one of 2**53 or more came with fractions in "
                "the same request, so it was read as a float and may be rounded: send "
                "integers only (no fraction, no exponent) for this model"
            )
        return np.ascontiguousarray(values, dtype=dtype)
    if kind == "b":
        return np.ascontiguousarray(values != 0)
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(values, dtype=dtype)
    if (values.dtype.kind == "f" and dtype.itemsize < values.dtype.itemsize
            and not np.isfinite(out).all()):
        raise BadRequest(
            f"input {name!r} takes finite {dtype.name} numbers; a value is beyond its range"
        )
    return out


def mismatch(missing: Sequence[Any], unknown: Sequence[Any], what: str) -> str:
    """``"missing key(s): a, b; unknown key(s): c"`` (ten names at most of each), for a
    request whose names do not match the model's; ``""`` when they match."""
    parts = [f"{kind} {what}(s): {', '.join(map(str, names[:10]))}"
             for kind, names in (("missing", missing), ("unknown", unknown)) if names]
    return "; ".join(parts)


@dataclass(frozen=True)
class InputPlan:
    """How each row's values feed one model input: ``size`` values from ``start``,
    shaped ``dims`` per row, of ``dtype``."""

    start: int
    size: int
    dims: tuple[int, ...]
    dtype: np.dtype
    name: str


def input_plan(model: str, signature: Mapping[str, Any], n_values: int) -> list[InputPlan]:
    """The plan of each input of ``model`` for rows of ``n_values`` values.

    Inputs take consecutive values in signature order; an input of unknown size is
    possible only when it is the model's one ``[None, None]`` input (it takes the row).
    """
    specs = signature.get("inputs") or []
    if not specs:
        raise BadRequest(f"model {model!r} has no inputs")
    sizes: list[int | None] = []
    for spec in specs:
        dims = list(spec.get("shape") or [])[1:]
        if any(d is None or d < 0 for d in dims):
            sizes.append(None)
        else:
            sizes.append(math.prod(dims))
    if None in sizes:
        if len(specs) == 1 and len(specs[0].get("shape") or []) == 2:
            sizes = [n_values]
        else:
            raise BadRequest(
                f"model {model!r} has inputs of unknown size; "
                "a flat vector of values cannot be mapped onto them"
            )
    expected = sum(s or 0 for s in sizes)
    if expected != n_values:
        raise BadRequest(f"model {model!r} expects {expected} values per row, got {n_values}")
    plan, start = [], 0
    for spec, size in zip(specs, sizes):
        size = size or 0
        dims = list(spec.get("shape") or [None, size])[1:]
        if any(d is None or d < 0 for d in dims):
            dims = [size]
        plan.append(InputPlan(start, size, tuple(dims), numpy_dtype(spec.get("dtype")),
                              str(spec.get("name"))))
        start += size
    return plan


def split_rows(rows: np.ndarray, plan: Sequence[InputPlan]) -> list[np.ndarray]:
    """Cut 2-D ``rows`` into one array per input, each ``[rows, *dims]`` of its dtype."""
    n_rows = rows.shape[0]
    if len(plan) == 1:  # one input takes the whole row: no slicing
        p = plan[0]
        return [as_input(rows, p.dtype, p.name).reshape(n_rows, *p.dims)]
    return [
        as_input(rows[:, p.start : p.start + p.size], p.dtype, p.name).reshape(n_rows, *p.dims)
        for p in plan
    ]


def typed_inputs(model: str, signature: Mapping[str, Any],
                 arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Arrays already one per input (signature order, rows first), each cast exactly
    to its input's dtype: for requests that carry typed tensors."""
    specs = signature.get("inputs") or []
    if len(arrays) != len(specs):
        raise BadRequest(f"model {model!r} takes {len(specs)} input(s), got {len(arrays)}")
    return [as_input(np.asarray(a), numpy_dtype(s.get("dtype")), str(s.get("name")))
            for a, s in zip(arrays, specs)]


def output_rows(outputs: Sequence[np.ndarray], n_rows: int) -> list[np.ndarray]:
    """Each output as ``[n_rows, values]``, in its own dtype (never cast)."""
    if not outputs:
        raise WorkerError("the model returned no outputs", ErrorKind.MODEL)
    rows = []
    for out in outputs:
        out = np.asarray(out)
        if out.ndim == 0 or out.shape[0] != n_rows:
            raise WorkerError(
                "the model's output has no batch dimension matching the input rows",
                ErrorKind.MODEL,
            )
        rows.append(out.reshape(n_rows, -1))
    return rows


class Shaper:
    """Turns rows of values into a model's inputs, remembering per model version the
    key order and the input plan (bounded caches: they are cleared past 1024)."""

    def __init__(self) -> None:
        self._orders: dict[tuple[str, tuple[str, ...]], np.ndarray | None] = {}
        self._plans: dict[tuple[str, int], list[InputPlan]] = {}

    def key_order(self, model_key: str, model: str, model_keys: Sequence[str] | None,
                  keys: Sequence[str] | None) -> np.ndarray | None:
        """Column order that maps request ``keys`` onto the model's params ``keys``
        (``None``: keep the order).

        Where params.json lists no keys, the order of the values alone counts (as
        the original); where it does, every listed key must be sent exactly once.
        """
        if not model_keys or keys is None:
            return None
        cache_key = (model_key, tuple(keys))
        if cache_key in self._orders:
            return self._orders[cache_key]
        position = {k: i for i, k in enumerate(keys)}
        if len(position) != len(keys):
            raise BadRequest("'keys' has duplicates")
        known = set(model_keys)
        missing = [k for k in model_keys if k not in position]
        unknown = [k for k in keys if k not in known]
        problem = mismatch(missing, unknown, "key")
        if problem:
            raise BadRequest(f"model {model!r}: {problem}")
        order = np.asarray([position[k] for k in model_keys], dtype=np.intp)
        mapping = None if np.array_equal(order, np.arange(len(keys))) else order
        if len(self._orders) >= _MAX_CACHED:
            self._orders.clear()
        self._orders[cache_key] = mapping
        return mapping

    def plan(self, model_key: str, model: str, signature: Mapping[str, Any],
             n_values: int) -> list[InputPlan]:
        plan = self._plans.get((model_key, n_values))
        if plan is None:
            plan = input_plan(model, signature, n_values)
            if len(self._plans) >= _MAX_CACHED:
                self._plans.clear()
            self._plans[(model_key, n_values)] = plan
        return plan

    def rows_to_inputs(self, model_key: str, model: str, params: Mapping[str, Any],
                       signature: Mapping[str, Any], rows: np.ndarray,
                       keys: Sequence[str] | None) -> list[np.ndarray]:
        """The inputs of ``model`` for 2-D ``rows`` whose columns are named ``keys``."""
        order = self.key_order(model_key, model, params.get("keys"), keys)
        if order is not None:
            if rows.shape[1] != len(order):
                raise BadRequest(f"{len(keys or [])} keys but {rows.shape[1]} values per row")
            rows = rows[:, order]
        return split_rows(rows, self.plan(model_key, model, signature, rows.shape[1]))


@dataclass(frozen=True)
class ImageLayout:
    """How a decoded image feeds a model's one image input."""

    channels: int  # 1 (gray) or 3 (RGB)
    size: tuple[int, int] | None  # (height, width) to resize to; None: keep the image's
    rank: int  # of the input's shape: 4 [N, H, W, C], 3 [N, H, W*C], 2 [N, H*W*C]
    dtype: np.dtype
    name: str
    #: [N, C, H, W] (an ONNX/PyTorch model's input, marked ``"layout": "NCHW"``)
    channels_first: bool = False
    #: the input's shape, seen channels last (None or -1: any size)
    shape: tuple[Any, ...] = ()


def image_layout(model: str, signature: Mapping[str, Any],
                 params: Mapping[str, Any]) -> ImageLayout:
    """The image policy of ``model``: channels from params ``img_channels`` (or
    ``imgChannels``), else from the input's shape (a last axis of 1 or 3; none at all
    is gray), else RGB; the size from the input's shape when it is fixed."""
    specs = signature.get("inputs") or []
    if len(specs) != 1:
        raise BadRequest(f"model {model!r} does not take one image input")
    spec = specs[0]
    shape = list(spec.get("shape") or [])
    channels_first = spec.get("layout") == "NCHW" and len(shape) == 4
    if channels_first:  # seen as channels last from here on; image_input transposes
        shape = [shape[0], shape[2], shape[3], shape[1]]
    raw = params.get("img_channels") or params.get("imgChannels")
    if not raw and len(shape) == 4 and shape[3] in (1, 3):
        raw = shape[3]
    if not raw and len(shape) == 3:  # [None, H, W]: one gray value per pixel
        raw = 1
    try:
        channels = int(raw or 3)
    except (TypeError, ValueError):
        channels = 0
    if channels not in (1, 3):
        raise BadRequest(f"model params img_channels must be 1 or 3, not {raw!r}")

    def fixed(d: Any) -> bool:
        return isinstance(d, int) and d > 0

    size = None
    if len(shape) == 4 and fixed(shape[1]) and fixed(shape[2]):
        size = (int(shape[1]), int(shape[2]))
    elif len(shape) == 3 and fixed(shape[1]) and fixed(shape[2]) and shape[2] % channels == 0:
        size = (int(shape[1]), int(shape[2]) // channels)  # rows of W * channels values
    return ImageLayout(channels, size, len(shape), numpy_dtype(spec.get("dtype")),
                       str(spec.get("name")), channels_first, tuple(shape))


def check_image_fits(model: str, layout: ImageLayout, height: int, width: int) -> None:
    """Refuse (400), before it is decoded, an image of ``height`` x ``width`` pixels that
    would not make the input of ``model`` (:func:`image_input`'s shape, after the resize
    to ``layout.size``): a model over 8 numbers is never sent a decoded photograph."""
    h, w = layout.size or (height, width)
    c = layout.channels
    produced = {4: (1, h, w, c), 3: (1, h, w * c), 2: (1, h * w * c)}.get(layout.rank)
    expected = list(layout.shape)
    if produced is None or any(
        isinstance(want, int) and not isinstance(want, bool) and want > 0 and want != got
        for want, got in zip(expected[1:], produced[1:])
    ):
        raise BadRequest(
            f"model {model!r} does not take this image: its input {layout.name!r} has "
            f"shape {expected}, and a {width}x{height} image with {c} channel(s) gives "
            f"{list(produced) if produced else [1, h, w, c]}"
        )


def image_input(image: np.ndarray, layout: ImageLayout) -> np.ndarray:
    """A decoded ``[1, H, W, C]`` image as the model's input: reshaped to its rank, cast
    exactly to its dtype."""
    if layout.channels_first:
        image = image.transpose(0, 3, 1, 2)
    elif layout.rank == 2:  # a dense model over flattened pixels
        image = image.reshape(1, -1)
    elif layout.rank == 3:
        image = image.reshape(1, image.shape[1], -1)
    return as_input(image, layout.dtype, layout.name)
