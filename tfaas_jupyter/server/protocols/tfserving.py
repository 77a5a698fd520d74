"""TensorFlow Serving's REST API (``v1/models/NAME[/versions/N|/labels/L]``) over the service.

Model status, model metadata (``signature_def``) and ``:predict`` in the row
(``instances`` -> ``predictions``) and columnar (``inputs`` -> ``outputs``) formats, with
named or unnamed inputs, as TF Serving's REST API document describes them. Values keep
their dtype: integers are exact, and ``{"b64": ...}`` (bytes) is refused with a 400 since
the models served here take numeric inputs only.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import orjson

from ..codecs import check_json_values
from ..errors import BadRequest, PayloadTooLarge, of_model
from ..keys import Grant
from ..modelfiles import ModelVersion
from ..service import TFaaS
from ..tensors import (
    TF_DTYPES,
    array_from_json,
    by_input_name,
    json_data,
    json_object,
    numpy_dtype,
    signature_shape,
)
from ..timing import Stages

SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"


def _version_status(mv: ModelVersion) -> dict[str, Any]:
    """AVAILABLE, or END with the loader's reason once a load of the version failed."""
    if mv.load_error is not None:
        return {"version": str(mv.version), "state": "END",
                "status": {"error_code": "UNKNOWN", "error_message": mv.load_error}}
    return {"version": str(mv.version), "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}


def model_status(service: TFaaS, name: str, version: str | None,
                 grant: Grant | None = None) -> dict[str, Any]:
    """GetModelStatusResponse: every version, or the one asked for."""
    if version is None:
        service.resolve(name, grant=grant)  # the name's checks and a 404 naming the model
        versions = service.repository.versions(name)
    else:
        versions = [service.resolve(name, version, grant=grant)]
    return {"model_version_status": [_version_status(v) for v in versions]}


def _tensor_info(spec: dict[str, Any]) -> dict[str, Any]:
    shape = spec.get("shape")
    info: dict[str, Any] = {
        "dtype": TF_DTYPES.get(str(spec.get("dtype") or "float32"), "DT_INVALID"),
        "name": f"{spec.get('name')}:0",
    }
    if shape is None:
        info["tensor_shape"] = {"dim": [], "unknown_rank": True}
    else:
        info["tensor_shape"] = {
            "dim": [{"size": str(d), "name": ""} for d in signature_shape(shape)],
            "unknown_rank": False,
        }
    return info


async def model_metadata(service: TFaaS, name: str, version: str | None,
                         grant: Grant | None = None,
                         stages: Stages | None = None) -> dict[str, Any]:
    """GetModelMetadataResponse with the ``signature_def`` of ``serving_default``."""
    mv = service.resolve(name, version, grant=grant)
    signature = await service.signature(mv, stages)
    definition = {
        "inputs": {str(s["name"]): _tensor_info(s) for s in signature.get("inputs") or []},
        "outputs": {str(s["name"]): _tensor_info(s) for s in signature.get("outputs") or []},
        "method_name": PREDICT_METHOD,
    }
    return {
        "model_spec": {"name": mv.name, "signature_name": "", "version": str(mv.version)},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: definition}}},
    }


# -- predict ----------------------------------------------------------------------------


def _has_b64(value: Any) -> bool:
    """Whether a JSON value holds ``{"b64": ...}`` (descending the first elements only)."""
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, dict) and "b64" in value


def _tensor(value: Any, spec: dict[str, Any], model: str) -> np.ndarray:
    name = str(spec.get("name"))
    what = f"input {name!r} of model {model!r}"
    dtype = numpy_dtype(spec.get("dtype"))
    if _has_b64(value):
        raise BadRequest(
            f"{what} is {TF_DTYPES.get(str(spec.get('dtype')), spec.get('dtype'))}; "
            '{"b64": ...} values are for string (DT_STRING) inputs, and this model has none'
        )
    if dtype is None or dtype.kind not in "biuf":
        raise BadRequest(f"{what} has dtype {spec.get('dtype')}, which JSON cannot fill")
    return array_from_json(value, dtype, what)


def _check_signature_name(doc: dict[str, Any]) -> None:
    name = doc.get("signature_name")
    if name not in (None, "", SIGNATURE):
        raise BadRequest(
            f"signature_name {name!r} is not served; the model has one signature, {SIGNATURE!r}"
        )


def _unnamed_refused(specs: list[dict[str, Any]], model: str, where: str) -> BadRequest:
    names = ", ".join(str(s.get("name")) for s in specs)
    return BadRequest(
        f"model {model!r} has {len(specs)} inputs ({names}): {where} must be an object "
        "naming them"
    )


def _row_inputs(specs: list[dict[str, Any]], instances: Any, model: str) -> list[np.ndarray]:
    if not isinstance(instances, list) or not instances:
        raise BadRequest("'instances' must be a non-empty list (one element per instance)")
    if isinstance(instances[0], dict) and "b64" not in instances[0]:
        if not all(isinstance(i, dict) for i in instances):
            raise BadRequest("'instances' mixes named (objects) and unnamed instances")
        columns: list[Sequence[Any]] = list(
            zip(*(by_input_name(specs, i, model) for i in instances)))
    elif len(specs) == 1:
        columns = [instances]
    else:
        raise _unnamed_refused(specs, model, "each instance")
    return [_tensor(list(column), spec, model) for column, spec in zip(columns, specs)]


def _columnar_inputs(specs: list[dict[str, Any]], inputs: Any, model: str) -> list[np.ndarray]:
    if isinstance(inputs, dict) and "b64" not in inputs:
        values = by_input_name(specs, inputs, model)
    elif len(specs) == 1:
        values = [inputs]
    else:
        raise _unnamed_refused(specs, model, "'inputs'")
    return [_tensor(value, spec, model) for value, spec in zip(values, specs)]


def _output_names(signature: dict[str, Any], count: int) -> list[str]:
    names = [str(s.get("name")) for s in signature.get("outputs") or []]
    return names if len(names) == count else [f"output_{i}" for i in range(count)]


def _row_answer(names: list[str], outputs: list[np.ndarray], rows: int) -> dict[str, Any]:
    for name, output in zip(names, outputs):
        if np.ndim(output) == 0 or np.shape(output)[0] != rows:
            raise BadRequest(
                f"output {name!r} has no batch dimension of {rows} instances; "
                "use the columnar format ('inputs')"
            )
    arrays = [json_data(np.asarray(o)) for o in outputs]
    if len(arrays) == 1:
        return {"predictions": arrays[0]}
    return {"predictions": [{n: a[i] for n, a in zip(names, arrays)} for i in range(rows)]}


def _columnar_answer(names: list[str], outputs: list[np.ndarray]) -> dict[str, Any]:
    arrays = [json_data(np.asarray(o)) for o in outputs]
    if len(arrays) == 1:
        return {"outputs": arrays[0]}
    return {"outputs": dict(zip(names, arrays))}


async def predict(service: TFaaS, name: str, version: str | None, body: bytes,
                  grant: Grant | None = None,
                  stages: Stages | None = None) -> tuple[str, int, bytes]:
    """``:predict``: answers (model name, rows, JSON body)."""
    with service.admit():
        check_json_values(body, service.limits.max_values)
        doc = json_object(body, "the request", "'instances' or 'inputs'")
        if ("instances" in doc) == ("inputs" in doc):
            raise BadRequest("the request needs exactly one of 'instances' (row format) "
                             "and 'inputs' (columnar format)")
        _check_signature_name(doc)
        mv = service.resolve(name, version, grant=grant)
        with of_model(mv.name):
            signature = await service.signature(mv, stages)
            specs = signature.get("inputs") or []
            if not specs:
                raise BadRequest(f"model {mv.name!r} has no inputs")
            row_format = "instances" in doc
            if row_format:
                arrays = _row_inputs(specs, doc["instances"], mv.name)
            else:
                arrays = _columnar_inputs(specs, doc["inputs"], mv.name)
            rows = int(arrays[0].shape[0]) if arrays[0].ndim else 1
            if rows > service.limits.max_rows:
                raise PayloadTooLarge(
                    f"request has {rows} rows; the limit is {service.limits.max_rows} "
                    "rows per request"
                )
            outputs = await service.run(mv, arrays, stages)
            names = _output_names(signature, len(outputs))
            answer = (_row_answer(names, outputs, rows) if row_format
                      else _columnar_answer(names, outputs))
            return mv.name, rows, orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)

