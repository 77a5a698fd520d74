"""The Open Inference Protocol ("KServe V2", Triton's HTTP API) over the model service.

Requests are JSON tensors, or JSON followed by raw tensor bytes (the binary tensor data
extension: ``Inference-Header-Content-Length`` gives the JSON's length, each binary input
carries ``parameters.binary_data_size``). Binary inputs are ``np.frombuffer`` views of the
request body: no per-value work and no copy on the way to the model worker. Outputs go
back as JSON ``data`` or, when asked (``binary_data`` / ``binary_data_output``), as raw
little-endian bytes after the JSON.

No HTTP framework here: handlers/v2.py passes the body and the header and writes the answer.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import orjson

from ... import __version__
from ...v2binary import (
    HEADER_LENGTH,
    V2_DTYPES,
    little_endian_bytes,
    v2_datatype,
    v2_datatype_of,
)
from ..codecs import MAX_VALUES_SETTING, check_json_values
from ..errors import BadRequest, PayloadTooLarge, of_model
from ..keys import Grant
from ..modelfiles import ModelVersion
from ..service import TFaaS
from ..shm import SharedMemoryRegions, region_parameters
from ..tensors import (
    array_from_json,
    by_input_name,
    bytes_elements,
    json_data,
    json_object,
    signature_shape,
)
from ..timing import Stages

EXTENSIONS = ["binary_tensor_data", "system_shared_memory"]
_MAX_RANK = 32
_LENGTH = struct.Struct("<I")


@dataclass
class InferInput:
    name: str
    datatype: str
    shape: list[int]
    array: np.ndarray


@dataclass
class InferRequest:
    inputs: list[InferInput]
    #: requested outputs as (name, binary?) in order; None: all outputs
    outputs: list[tuple[str, bool]] | None
    binary_output: bool = False
    id: str | None = None
    #: outputs to write into a shared memory region: name -> their parameters
    output_regions: dict[str, dict[str, Any]] = field(default_factory=dict)
    regions: SharedMemoryRegions | None = None


@dataclass
class InferAnswer:
    model: str
    rows: int
    header: bytes
    #: raw output tensors following the JSON header, in the order of its outputs
    binary: list[memoryview] = field(default_factory=list)


def server_metadata() -> dict[str, Any]:
    return {"name": "tfaas-jupyter", "version": __version__, "extensions": EXTENSIONS}


def _tensor_metadata(specs: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {"name": str(s.get("name")), "datatype": v2_datatype(s.get("dtype")),
         "shape": signature_shape(s.get("shape"))}
        for s in specs or []
    ]


async def model_metadata(service: TFaaS, name: str, version: str | None,
                         grant: Grant | None = None,
                         stages: Stages | None = None) -> dict[str, Any]:
    mv = service.resolve(name, version, grant=grant)
    signature = await service.signature(mv, stages)
    return {
        "name": mv.name,
        "versions": [str(v.version) for v in service.repository.versions(mv.name)],
        "platform": f"tensorflow_{mv.format}",
        "inputs": _tensor_metadata(signature.get("inputs")),
        "outputs": _tensor_metadata(signature.get("outputs")),
    }


async def model_ready(service: TFaaS, name: str, version: str | None,
                      grant: Grant | None = None,
                      stages: Stages | None = None) -> dict[str, Any]:
    """Ready once the worker has loaded (and warmed) the version; loads it if it has not."""
    mv = service.resolve(name, version, grant=grant)
    await service.signature(mv, stages)
    return {"name": mv.name, "version": str(mv.version), "ready": True}


# -- infer request -------------------------------------------------------------------


@overload
def header_length_of(value: str, body_length: int) -> int: ...
@overload
def header_length_of(value: None, body_length: int) -> None: ...
def header_length_of(value: str | None, body_length: int) -> int | None:
    """The ``Inference-Header-Content-Length`` of a body of ``body_length`` bytes (None
    without the header), or a 400 when it is no number or runs past the body."""
    if value is None:
        return None
    if not value.strip().isdigit():
        raise BadRequest(f"{HEADER_LENGTH} must be a number of bytes, not {value[:40]!r}")
    length = int(value)
    if length > body_length:
        raise BadRequest(
            f"{HEADER_LENGTH} is {length} but the body has only {body_length} bytes"
        )
    return length


def _shape(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or len(value) > _MAX_RANK or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise BadRequest(f"{what}: 'shape' must be a list of dimensions (integers >= 0)")
    return value


def _parameters(doc: dict[str, Any], what: str) -> dict[str, Any]:
    params = doc.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadRequest(f"{what}: 'parameters' must be an object")
    return params


def _count_bytes_elements(chunk: memoryview, limit: int) -> int:
    """How many BYTES elements ``chunk`` holds, read from their lengths alone (no
    object made); the count stops past ``limit``."""
    count = offset = 0
    while offset + 4 <= len(chunk) and count <= limit:
        (size,) = _LENGTH.unpack_from(chunk, offset)
        offset += 4 + size
        count += 1
    return count


def _binary_bytes(chunk: memoryview, what: str, max_values: int | None) -> np.ndarray:
    """BYTES elements of the binary extension: each a 4-byte little-endian length + bytes
    (one Python object each, so they count against ``max_values``, before any is made
    when the chunk could hold more)."""
    if (max_values is not None and len(chunk) // 4 > max_values
            and _count_bytes_elements(chunk, max_values) > max_values):
        raise PayloadTooLarge(
            f"{what} has more than {max_values} BYTES elements; the limit is {max_values} "
            f"values per request ({MAX_VALUES_SETTING})"
        )
    items, offset = [], 0
    while offset < len(chunk):
        if offset + 4 > len(chunk):
            raise BadRequest(f"{what}: truncated BYTES element length")
        (size,) = _LENGTH.unpack_from(chunk, offset)
        offset += 4
        if offset + size > len(chunk):
            raise BadRequest(f"{what}: a BYTES element runs past binary_data_size")
        items.append(bytes(chunk[offset : offset + size]))
        offset += size
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _decode_input(doc: Any, index: int, binary: memoryview, offset: int,
                  max_rows: int | None, max_values: int | None,
                  regions: SharedMemoryRegions | None = None) -> tuple[InferInput, int]:
    if not isinstance(doc, dict):
        raise BadRequest(f"inputs[{index}] must be an object with name, shape, datatype, data")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"inputs[{index}] has no 'name'")
    what = f"input {name!r}"
    datatype = doc.get("datatype")
    dtype = V2_DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None or not isinstance(datatype, str):
        raise BadRequest(
            f"{what}: unknown datatype {datatype!r}; one of {', '.join(V2_DTYPES)}"
        )
    shape = _shape(doc.get("shape"), what)
    if max_rows is not None and shape and shape[0] > max_rows:
        raise PayloadTooLarge(
            f"{what} has {shape[0]} rows; the limit is {max_rows} rows per request"
        )
    count = math.prod(shape)
    params = _parameters(doc, what)
    size = params.get("binary_data_size")
    if region_parameters(params):
        if "data" in doc or size is not None:
            raise BadRequest(f"{what} names a shared memory region and also carries data")
        if regions is None:
            raise BadRequest(f"{what}: shared memory regions are not available here")
        array = regions.input_array(params, what, dtype, shape)
    elif size is not None:
        if "data" in doc:
            raise BadRequest(f"{what} has both 'data' and binary_data_size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"{what}: binary_data_size must be a number of bytes")
        if offset + size > len(binary):
            raise BadRequest(
                f"{what}: binary_data_size {size} runs past the end of the body "
                f"({len(binary) - offset} bytes left)"
            )
        chunk = binary[offset : offset + size]
        if datatype == "BYTES":
            array = _binary_bytes(chunk, what, max_values)
        else:
            if size != count * dtype.itemsize:
                raise BadRequest(
                    f"{what}: shape {shape} of {datatype} is {count * dtype.itemsize} bytes, "
                    f"binary_data_size says {size}"
                )
            array = np.frombuffer(chunk, dtype=dtype)
        offset += size
    elif "data" in doc:
        data = doc["data"]
        if datatype == "BYTES":
            array = bytes_elements(data, what)
        else:
            array = array_from_json(data, dtype, what)
    else:
        raise BadRequest(f"{what} has no 'data' (nor binary_data_size)")
    if array.size != count:
        raise BadRequest(f"{what}: shape {shape} holds {count} values, the data has {array.size}")
    return InferInput(name, datatype, shape, array.reshape(shape)), offset


def _flag(params: dict[str, Any], key: str, what: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{what}: {key} must be true or false")
    return value


def decode_infer_request(
    body: bytes | bytearray, header_length: str | None, *, max_rows: int | None = None,
    max_values: int | None = None, regions: SharedMemoryRegions | None = None,
) -> InferRequest:
    """Parse an infer request (JSON alone, or JSON + binary tensors); the JSON is
    counted before it is decoded (:func:`codecs.check_json_values`)."""
    view = memoryview(body)
    length = header_length_of(header_length, len(view))
    check_json_values(body, max_values, length)
    json_part, binary = (view, view[:0]) if length is None else (view[:length], view[length:])
    return decode_infer_parts(json_object(json_part, "the inference request", "'inputs'"),
                              binary, max_rows=max_rows, max_values=max_values,
                              regions=regions)


def decode_infer_parts(doc: dict[str, Any], binary: memoryview, *,
                       max_rows: int | None = None,
                       max_values: int | None = None,
                       regions: SharedMemoryRegions | None = None) -> InferRequest:
    """An infer request from its parsed JSON and the binary tensor bytes after it (empty
    without the binary extension). Binary inputs are views of ``binary``: for a numeric
    input nothing is read from it here, so it may still be arriving."""
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("the inference request needs 'inputs': a list of tensors")
    inputs, offset = [], 0
    for index, item in enumerate(raw_inputs):
        tensor, offset = _decode_input(item, index, binary, offset, max_rows, max_values,
                                       regions)
        inputs.append(tensor)
    if offset != len(binary):
        raise BadRequest(
            f"the body has {len(binary) - offset} bytes after the tensors that "
            "binary_data_size accounts for"
        )
    names = [t.name for t in inputs]
    if len(set(names)) != len(names):
        raise BadRequest("an input is sent twice")
    params = _parameters(doc, "the request")
    outputs = None
    output_regions: dict[str, dict[str, Any]] = {}
    if doc.get("outputs") is not None:
        if not isinstance(doc["outputs"], list):
            raise BadRequest("'outputs' must be a list of {name, parameters}")
        outputs = []
        for item in doc["outputs"]:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise BadRequest("each requested output needs a 'name'")
            what = f"output {item['name']!r}"
            out_params = _parameters(item, what)
            if region_parameters(out_params):
                if regions is None:
                    raise BadRequest(f"{what}: shared memory regions are not available here")
                output_regions[item["name"]] = out_params
            outputs.append((item["name"], _flag(out_params, "binary_data", what)))
    request_id = doc.get("id")
    return InferRequest(
        inputs=inputs, outputs=outputs,
        binary_output=_flag(params, "binary_data_output", "the request"),
        id=request_id if isinstance(request_id, str) else None,
        output_regions=output_regions, regions=regions,
    )


# -- running it ------------------------------------------------------------------------


def model_inputs(mv: ModelVersion, signature: dict[str, Any],
                  inputs: list[InferInput]) -> list[np.ndarray]:
    """The request's tensors in the model's input order, checked against its signature."""
    specs = signature.get("inputs") or []
    ordered = by_input_name(specs, {t.name: t for t in inputs}, mv.name)
    arrays = []
    for spec, tensor in zip(specs, ordered):
        datatype = v2_datatype(spec.get("dtype"))
        if tensor.datatype != datatype:
            raise BadRequest(
                f"input {tensor.name!r} of model {mv.name!r} is {datatype}; "
                f"the request sent {tensor.datatype}"
            )
        want = signature_shape(spec.get("shape"))
        if spec.get("shape") is not None and (
            len(want) != len(tensor.shape)
            or any(w >= 0 and w != d for w, d in zip(want, tensor.shape))
        ):
            raise BadRequest(
                f"input {tensor.name!r} of model {mv.name!r} takes shape {want}, "
                f"got {tensor.shape}"
            )
        arrays.append(tensor.array)
    return arrays


def encode_answer(mv: ModelVersion, signature: dict[str, Any], outputs: list[np.ndarray],
                   request: InferRequest, rows: int) -> InferAnswer:
    names = [str(s.get("name")) for s in signature.get("outputs") or []]
    if len(names) != len(outputs):
        names = [f"output_{i}" for i in range(len(outputs))]
    position = {n: i for i, n in enumerate(names)}
    chosen = request.outputs
    if chosen is None:
        chosen = [(n, request.binary_output) for n in names]
    else:
        unknown = [n for n, _ in chosen if n not in position]
        if unknown:
            raise BadRequest(
                f"model {mv.name!r} has no output {unknown[0]!r}; outputs: {', '.join(names)}"
            )
        chosen = [(n, binary or request.binary_output) for n, binary in chosen]
    docs, binary_parts = [], []
    for name, binary in chosen:
        array = np.asarray(outputs[position[name]])
        out: dict[str, Any] = {
            "name": name, "datatype": v2_datatype_of(array.dtype), "shape": list(array.shape),
        }
        if name in request.output_regions and request.regions is not None:
            region = request.output_regions[name]
            written = request.regions.write_output(region, f"output {name!r}",
                                                   little_endian_bytes(array))
            out["parameters"] = {
                "shared_memory_region": region["shared_memory_region"],
                "shared_memory_byte_size": written,
            }
            if "shared_memory_offset" in region:
                out["parameters"]["shared_memory_offset"] = region["shared_memory_offset"]
        elif binary and array.dtype.kind != "O":
            raw = little_endian_bytes(array)
            out["parameters"] = {"binary_data_size": len(raw)}
            binary_parts.append(raw)
        else:
            out["data"] = json_data(array.reshape(-1))
        docs.append(out)
    doc: dict[str, Any] = {
        "model_name": mv.name, "model_version": str(mv.version), "outputs": docs,
    }
    if request.id is not None:
        doc["id"] = request.id
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    return InferAnswer(mv.name, rows, header, binary_parts)


async def infer(service: TFaaS, name: str, version: str | None, body: bytes | bytearray,
                header_length: str | None, grant: Grant | None = None,
                stages: Stages | None = None,
                regions: SharedMemoryRegions | None = None) -> InferAnswer:
    """Run one inference request on a model version (latest when ``version`` is None);
    ``regions``: the shared memory regions its tensors may name."""
    with service.admit():
        request = decode_infer_request(body, header_length, max_rows=service.limits.max_rows,
                                       max_values=service.limits.max_values, regions=regions)
        return await run_request(service, service.resolve(name, version, grant=grant), request,
                                 stages)


async def run_request(service: TFaaS, mv: ModelVersion, request: InferRequest,
                      stages: Stages | None = None) -> InferAnswer:
    """Run a decoded infer request on ``mv`` and encode its answer."""
    with of_model(mv.name):
        signature = await service.signature(mv, stages)
        arrays = model_inputs(mv, signature, request.inputs)
        outputs = await service.run(mv, arrays, stages)
        return encode_answer(mv, signature, outputs, request, _rows(arrays))


def _rows(arrays: list[np.ndarray]) -> int:
    return int(arrays[0].shape[0]) if arrays and arrays[0].ndim else 1
