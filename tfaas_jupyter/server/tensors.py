"""Tensors of the standard protocols (Open Inference Protocol V2, TF Serving REST) as numpy.

One place knows the V2 datatype names and how JSON numbers become an input's dtype:
exactly, or a 400 naming the input (no silent rounding of an integer, no wrap-around,
no float overflowing to infinity).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import orjson

# the datatype table is shared with the client; re-exported for the protocol modules
from ..v2binary import V2_DTYPES, v2_datatype, v2_datatype_of  # noqa: F401
from .errors import BadRequest
from .shaping import mismatch

#: numpy dtype name -> TensorFlow DataType enum name (TF Serving's metadata).
TF_DTYPES = {
    "bool": "DT_BOOL", "uint8": "DT_UINT8", "uint16": "DT_UINT16", "uint32": "DT_UINT32",
    "uint64": "DT_UINT64", "int8": "DT_INT8", "int16": "DT_INT16", "int32": "DT_INT32",
    "int64": "DT_INT64", "float16": "DT_HALF", "float32": "DT_FLOAT", "float64": "DT_DOUBLE",
    "bfloat16": "DT_BFLOAT16", "object": "DT_STRING", "bytes": "DT_STRING", "str": "DT_STRING",
}


def numpy_dtype(numpy_name: str | None) -> np.dtype | None:
    """The numpy dtype of a signature dtype name, or None when numpy does not know it."""
    try:
        return np.dtype(numpy_name or "float32")
    except TypeError:
        return None


def signature_shape(shape: Sequence[int | None] | None) -> list[int]:
    """A signature shape with -1 for each variable dimension ([-1] for an unknown rank)."""
    if shape is None:
        return [-1]
    return [-1 if d is None or d < 0 else int(d) for d in shape]


def json_object(body: bytes | memoryview, what: str, expected: str) -> dict[str, Any]:
    """A request body that must be one JSON object: ``what`` names the request,
    ``expected`` says what it should hold (both for the 400s)."""
    if not body:
        raise BadRequest(f"empty request body: expected {what} with {expected}")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"{what} must be a JSON object with {expected}")
    return doc


def by_input_name(specs: Sequence[dict[str, Any]], given: dict[str, Any],
                  model: str) -> list[Any]:
    """The values of ``given`` (input name -> value) in the model's input order; a 400
    naming the missing and unknown inputs unless every input is given, and nothing else."""
    wanted = [str(s.get("name")) for s in specs]
    missing = [n for n in wanted if n not in given]
    unknown = [str(n) for n in given if n not in wanted]
    problem = mismatch(missing, unknown, "input")
    if problem:
        raise BadRequest(f"model {model!r} takes inputs {', '.join(wanted)}; {problem}")
    return [given[n] for n in wanted]


def array_from_json(data: Any, dtype: np.dtype, what: str) -> np.ndarray:
    """JSON values (a number, or nested lists of them) as an array of ``dtype``, exactly.

    Integers stay exact up to 64 bits; a whole float is accepted for an integer input,
    a fraction or an out-of-range number is a 400; a float input takes any number that
    fits its range; BOOL takes only true/false.
    """
    try:
        raw = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"{what}: values must be numbers in lists of equal length") from None
    if raw.size == 0:
        return np.zeros(raw.shape, dtype=dtype)
    kind = raw.dtype.kind
    if dtype.kind == "b":
        if kind != "b":
            raise BadRequest(f"{what} is BOOL: send true or false")
        return raw
    if kind not in "iufb" or kind == "b":
        raise BadRequest(
            f"{what} takes {v2_datatype(dtype.name)} numbers; got "
            f"{'true/false' if kind == 'b' else 'null, text or uneven lists'}"
        )
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        range_error = BadRequest(f"{what} takes whole numbers from {info.min} to {info.max}")
        if kind in "iu":
            if raw.min() < info.min or raw.max() > info.max:
                raise range_error
            return raw.astype(dtype)
        # float64: fractions, or integers numpy could not hold in one integer type
        whole = (raw >= info.min) & (raw < float(info.max) + 1) & (raw == np.floor(raw))
        if not whole.all():
            raise range_error
        try:  # from the JSON values themselves: a big integer is not rounded via float64
            return np.asarray(data, dtype=dtype)
        except (OverflowError, ValueError, TypeError):
            raise range_error from None
    if dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            cast = raw.astype(dtype)
        if not np.isfinite(cast).all():
            raise BadRequest(f"{what}: a number is beyond {v2_datatype(dtype.name)}'s range")
        return cast
    raise BadRequest(f"{what} has datatype {dtype.name}, which JSON numbers cannot fill")


def bytes_elements(data: Any, what: str) -> np.ndarray:
    """A JSON BYTES tensor (strings, nested) as an object array of bytes."""
    try:
        raw = np.asarray(data, dtype=object)
    except (ValueError, TypeError):
        raise BadRequest(f"{what}: values must be strings in lists of equal length") from None
    flat = raw.reshape(-1)
    out = np.empty(flat.shape, dtype=object)
    for i, item in enumerate(flat):
        if isinstance(item, str):
            out[i] = item.encode("utf-8")
        elif isinstance(item, (bytes, bytearray)):
            out[i] = bytes(item)
        else:
            raise BadRequest(f"{what} is BYTES: every element must be a string")
    return out.reshape(raw.shape)


def json_data(array: np.ndarray) -> np.ndarray | list[Any]:
    """An output as orjson writes it: flat, native numbers (float16 widened to float32)."""
    if array.dtype.kind == "f" and array.dtype.itemsize == 2:
        array = array.astype(np.float32)
    if array.dtype.kind == "O":
        decode = np.frompyfunc(
            lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v, 1, 1
        )
        decoded: list[Any] = decode(array).tolist()
        return decoded
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)
