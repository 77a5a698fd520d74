"""The Open Inference Protocol's binary tensors, for the server and the client alike.

One table of V2 datatypes, and the layout of a binary request or answer: a JSON header
of ``Inference-Header-Content-Length`` bytes, then each binary tensor's raw
little-endian bytes in the order of the header's tensors, each sized by its
``parameters.binary_data_size``. Numpy and orjson only: the server side
(:mod:`tfaas_jupyter.server.v2`) and the client (:mod:`tfaas_jupyter.client.api`)
both import it, so the two ends cannot disagree on a dtype.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np
import orjson

#: The header of the binary tensor data extension.
HEADER_LENGTH = "Inference-Header-Content-Length"

#: V2 datatype name -> numpy dtype (little-endian, as the binary extension sends them).
V2_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
_NUMPY_TO_V2 = {dt.name: name for name, dt in V2_DTYPES.items() if name != "BYTES"}


def v2_datatype(numpy_name: str | None) -> str:
    """The V2 datatype name of a numpy dtype name (``float32`` -> ``FP32``)."""
    name = numpy_name or "float32"
    if name in ("object", "bytes", "str", "string"):
        return "BYTES"
    return _NUMPY_TO_V2.get(name, name.upper())


@functools.lru_cache(maxsize=64)
def v2_datatype_of(dtype: np.dtype) -> str:
    """The V2 datatype name of an array's dtype, remembered: numpy builds
    ``dtype.name`` anew at each access (a few µs, on every answer's every output)."""
    return v2_datatype(dtype.name)


def little_endian_bytes(array: np.ndarray) -> memoryview:
    """An array's values as the binary extension carries them: C order, little-endian
    (a view of ``array`` itself when it already is both)."""
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return little.reshape(-1).view(np.uint8).data


def binary_request(
    inputs: Sequence[tuple[str, np.ndarray]], *, outputs: Sequence[str] | None = None,
    input_parameters: Sequence[dict[str, Any] | None] | None = None,
    output_parameters: Sequence[dict[str, Any] | None] | None = None,
) -> tuple[bytes, list[memoryview]]:
    """An infer request with numeric inputs as binary tensors and every output asked
    back in binary: (JSON header, the tensors' bytes in order). The tensors' bytes are
    views of the arrays (no copy when they are C-ordered and little-endian).

    ``input_parameters[i]``, when given, replaces input ``i``'s bytes by those
    parameters (a shared memory region: nothing follows the header for it);
    ``output_parameters`` are the requested outputs' parameters the same way.
    """
    docs, parts = [], []
    for index, (name, array) in enumerate(inputs):
        doc: dict[str, Any] = {"name": name, "datatype": v2_datatype_of(array.dtype),
                               "shape": list(array.shape)}
        params = input_parameters[index] if input_parameters else None
        if params is None:
            raw = little_endian_bytes(array)
            doc["parameters"] = {"binary_data_size": len(raw)}
            parts.append(raw)
        else:
            doc["parameters"] = dict(params)
        docs.append(doc)
    request: dict[str, Any] = {"inputs": docs}
    if outputs is None:
        request["parameters"] = {"binary_data_output": True}
    else:
        wanted = []
        for index, name in enumerate(outputs):
            params = output_parameters[index] if output_parameters else None
            wanted.append({"name": name, "parameters": dict(params or {"binary_data": True})})
        request["outputs"] = wanted
    return orjson.dumps(request), parts


def split_answer(body: bytes, header_length: int | None) -> tuple[dict[str, Any],
                                                                   dict[str, np.ndarray]]:
    """An infer answer's JSON and its outputs by name. Binary outputs are read-only
    ``numpy.frombuffer`` views of ``body`` (never copied); JSON ones are arrays of
    their datatype. A ValueError says what does not add up."""
    view = memoryview(body)
    if header_length is None:
        header_length = len(view)
    if not 0 <= header_length <= len(view):
        raise ValueError(f"{HEADER_LENGTH} {header_length} is beyond the answer's "
                         f"{len(view)} bytes")
    doc = orjson.loads(view[:header_length])
    if not isinstance(doc, dict) or not isinstance(doc.get("outputs"), list):
        raise ValueError("the answer has no 'outputs'")
    offset, found = header_length, {}
    for out in doc["outputs"]:
        name, datatype = out.get("name"), out.get("datatype")
        dtype = V2_DTYPES.get(datatype) if isinstance(datatype, str) else None
        shape = out.get("shape")
        if dtype is None or dtype.kind == "O" or not isinstance(shape, list):
            raise ValueError(f"output {name!r} is no numeric tensor ({datatype})")
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if offset + size > len(view) or size != int(np.prod(shape)) * dtype.itemsize:
                raise ValueError(f"output {name!r}: binary_data_size {size} does not match "
                                 f"shape {shape} or the answer's length")
            array = np.frombuffer(view[offset:offset + size], dtype=dtype).reshape(shape)
            offset += size
        elif "data" in out:
            array = np.asarray(out["data"], dtype=dtype).reshape(shape)
        else:  # written into a shared memory region: the caller reads it there
            array = np.empty(0, dtype=dtype)
        found[str(name)] = array
    return doc, found
