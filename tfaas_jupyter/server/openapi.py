"""The OpenAPI descriptions the server hands out.

* :func:`global_spec`: the packaged ``openapi.json`` (every route, every constraint
  the server enforces on any request) with this server's URL and limits;
* :func:`model_spec`: one model version's prediction routes, built from its signature
  and params: the exact input names, widths, dtypes, ``keys`` and outputs, with an
  example, so that a request valid under it is one the model answers.

Both are plain dicts; :mod:`tfaas_jupyter.handlers.openapi` serves them.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib.resources import files
from typing import Any

import numpy as np

from ..examplerow import example_request, tensor_width
from .modelfiles import ModelVersion
from .service import Limits

#: Numbers at or beyond this round to infinity as float32: the JSON codec refuses them.
FLOAT32_LIMIT = 3.4028235677973366e38
#: The per-model routes, relative to ``{base_url}tfaas``.
JSON_ROUTES = ("/json", "/predict/json")
PROTO_ROUTES = ("/proto", "/predict/proto")
IMAGE_ROUTES = ("/image", "/predict/image")


@lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    """The packaged ``tfaas_jupyter/server/openapi.json`` (do not modify: it is shared)."""
    spec: dict[str, Any] = json.loads(
        files("tfaas_jupyter.server").joinpath("openapi.json").read_text("utf-8"))
    return spec


def _servers(tfaas_url: str) -> list[dict[str, str]]:
    return [{"url": tfaas_url, "description": "this Jupyter server's TFaaS"}]


def limits_text(limits: Limits) -> str:
    return (
        f"This server's limits: {limits.max_rows} rows per prediction request "
        f"(max_rows_per_request) and {limits.max_values} values (max_request_values), "
        f"uploads of {limits.max_upload_size} bytes "
        f"(max_upload_size) expanding to {limits.max_extracted_size} bytes "
        f"(max_extracted_size), images of {limits.max_image_pixels} pixels "
        f"(max_image_pixels), {limits.max_concurrent_requests} predictions in flight "
        "(max_concurrent_requests; beyond: 503 with Retry-After)."
    )


def global_spec(tfaas_url: str, limits: Limits) -> dict[str, Any]:
    """The description of every route, with this server's URL and limits filled in."""
    spec = copy.deepcopy(load_spec())
    spec["servers"] = _servers(tfaas_url)
    spec["info"]["description"] += " " + limits_text(limits)
    spec["components"]["schemas"]["Rows"]["maxItems"] = limits.max_rows
    return spec


# -- one model -------------------------------------------------------------------


def _value_schema(dtype_name: Any) -> dict[str, Any]:
    """What one JSON value of an input of this dtype may be."""
    try:
        dtype = np.dtype(dtype_name or "float32")
    except TypeError:
        dtype = np.dtype("float32")
    if dtype.kind in "iu" and dtype.itemsize < 8:
        info = np.iinfo(dtype)
        return {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
    if dtype.kind in "iu":  # 64-bit: integers that travel exactly (float64)
        low = 0 if dtype.kind == "u" else -(2**53)
        return {"type": "integer", "minimum": low, "maximum": 2**53}
    return {"type": "number", "exclusiveMinimum": -FLOAT32_LIMIT,
            "exclusiveMaximum": FLOAT32_LIMIT}


def _row_schema(inputs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One row of values for these inputs (None: a flat row cannot feed them)."""
    widths = [tensor_width(s) for s in inputs]
    if None in widths:
        if len(inputs) == 1 and len(inputs[0].get("shape") or []) == 2:
            return {"type": "array", "minItems": 1, "items": _value_schema(inputs[0].get("dtype"))}
        return None
    total = sum(w or 0 for w in widths)
    if total == 0:
        return None
    schemas = [_value_schema(s.get("dtype")) for s in inputs]
    row: dict[str, Any] = {"type": "array", "minItems": total, "maxItems": total}
    if all(s == schemas[0] for s in schemas):
        row["items"] = schemas[0]
    else:  # mixed dtypes: each position its own
        row["prefixItems"] = [s for s, w in zip(schemas, widths) for _ in range(w or 0)]
    names = ", ".join(f"{s.get('name')} {s.get('dtype')} {s.get('shape')}" for s in inputs)
    row["description"] = f"{total} values: the inputs {names}, one after the other"
    return row


def _output_schema(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    widths = [tensor_width(s) for s in outputs]
    row: dict[str, Any] = {"type": "array", "items": {"$ref": "#/components/schemas/Output"}}
    if outputs and None not in widths:
        row["minItems"] = row["maxItems"] = sum(w or 0 for w in widths)
    names = ", ".join(f"{s.get('name')} {s.get('dtype')} {s.get('shape')}" for s in outputs)
    row["description"] = f"the outputs {names}, one after the other"
    return row


def _image_input(inputs: list[dict[str, Any]]) -> bool:
    """Whether /image can feed this model: one input of rank 3 or 4 with a fixed size."""
    if len(inputs) != 1:
        return False
    shape = list(inputs[0].get("shape") or [])
    return len(shape) in (3, 4) and all(isinstance(d, int) and d > 0 for d in shape[1:3])


def _version_schema(version: int, latest: bool) -> dict[str, Any]:
    number = {"type": "integer", "const": version}
    text = {"type": "string", "maxLength": 9, "pattern": f"^0*{version}$"}
    if latest:  # absent, null or empty: the latest, which this is
        return {"anyOf": [number, text, {"type": "null"}, {"const": ""}]}
    return {"anyOf": [number, text]}


def _model_schema(name: str, is_default: bool) -> dict[str, Any]:
    """``model``: this model's name; for the default model, also what names the default
    (absent, null or empty), as the server answers those with it."""
    named = {"type": "string", "enum": [name]}
    if is_default:
        return {"anyOf": [named, {"type": "null"}, {"type": "string", "enum": [""]}]}
    return named


def _keys_schema(keys: list[str] | None) -> dict[str, Any]:
    if not keys:
        return {"type": ["array", "null"], "items": {"type": "string"},
                "description": "ignored: the model's params list no keys"}
    return {
        "type": ["array", "null"],
        "description": "the names of the values, each exactly once, in any order "
        "(empty or null: the values are in the order of the model's keys)",
        "anyOf": [{"type": "null"}, {"maxItems": 0},
                  {"items": {"enum": keys}, "uniqueItems": True,
                   "minItems": len(keys), "maxItems": len(keys)}],
    }


def model_spec(
    tfaas_url: str, mv: ModelVersion, signature: dict[str, Any], limits: Limits, *,
    latest: bool, is_default: bool = False,
) -> dict[str, Any]:
    """The prediction routes of one model version, described from its signature.

    ``model`` is this model's name; the default model may leave it out."""
    base = load_spec()
    inputs = list(signature.get("inputs") or [])
    outputs = list(signature.get("outputs") or [])
    keys = mv.params.get("keys") if isinstance(mv.params.get("keys"), list) else None
    title = f"{mv.name} version {mv.version}"
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {k: base["components"]["schemas"][k]
                               for k in ("Error", "Output", "ImageAnswer")}
    errors = {str(code): {"$ref": "#/components/responses/Error"}
              for code in (400, 403, 404, 409, 413, 500, 503, 504, 507)}
    row = _row_schema(inputs)
    out_row = _output_schema(outputs)
    if row is not None:
        required = ["values"] + ([] if is_default else ["model"]) + (
            [] if latest else ["version"])
        schemas["Row"] = row
        schemas["OutputRow"] = out_row
        schemas["PredictRequest"] = {
            "type": "object",
            "required": required,
            "properties": {
                "model": _model_schema(mv.name, is_default),
                "version": _version_schema(mv.version, latest),
                "keys": _keys_schema(keys),
                "values": {"anyOf": [
                    {"$ref": "#/components/schemas/Row"},
                    {"type": "array", "minItems": 1, "maxItems": limits.max_rows,
                     "items": {"$ref": "#/components/schemas/Row"}},
                ]},
            },
        }
        # the example every printed example shows (the tfaas/ page, %tfaas curl)
        example = example_request(mv.name, {**mv.params, "inputs": inputs})
        if not latest:
            example["version"] = mv.version
        for i, path in enumerate(JSON_ROUTES):
            paths[path] = {"post": {
                "operationId": "predictJson" + ("" if i == 0 else str(i + 1)),
                "summary": f"Predict with {title} from a JSON row (or rows)",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/PredictRequest"},
                    "example": example}}},
                "responses": {
                    "200": {"description": "one row of outputs for one row, a list of rows "
                            "for several", "content": {"application/json": {"schema": {
                                "anyOf": [{"$ref": "#/components/schemas/OutputRow"},
                                          {"type": "array", "minItems": 1, "items": {
                                              "$ref": "#/components/schemas/OutputRow"}}]}}}},
                    **errors,
                },
            }}
        width = row.get("minItems", 1)
        for i, path in enumerate(PROTO_ROUTES if latest else ()):  # a Row names no version
            paths[path] = {"post": {
                "operationId": "predictProto" + ("" if i == 0 else str(i + 1)),
                "summary": f"Predict with {title} from a serialized tfaaspb.Row",
                "description": f"The Row (proto/tfaas.proto) carries model '{mv.name}', "
                f"{width} float32 values and, optionally, their keys; the answer is a "
                "serialized tfaaspb.Predictions.",
                "requestBody": {"required": True, "content": {"application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"}}}},
                "responses": {"200": {"description": "A serialized tfaaspb.Predictions",
                                      "content": {"application/octet-stream": {"schema": {
                                          "type": "string", "format": "binary"}}}},
                              **errors},
            }}
    if _image_input(inputs):
        labelled = bool(mv.labels)
        answer = {"$ref": "#/components/schemas/ImageAnswer"}
        for i, path in enumerate(IMAGE_ROUTES):
            paths[path] = {"post": {
                "operationId": "predictImage" + ("" if i == 0 else str(i + 1)),
                "summary": f"Classify a png or jpg image with {title} (resized to "
                f"{inputs[0]['shape'][1]}x{inputs[0]['shape'][2]})",
                "requestBody": {"required": True, "content": {"multipart/form-data": {
                    "schema": {"type": "object", "required": ["image"] + (
                        [] if is_default else ["model"]) + ([] if latest else ["version"]),
                        "properties": {
                        "image": {"type": "string", "format": "binary",
                                  "description": "a png or jpg image"},
                        "model": {"type": "string",
                                  "enum": [mv.name, ""] if is_default else [mv.name]},
                        "version": {"type": "string", "maxLength": 9,
                                    "pattern": f"^0*{mv.version}$" if not latest
                                    else f"^(0*{mv.version})?$"},
                    }}}}},
                "responses": {"200": {"description": "the top labels" if labelled else
                                      "the outputs", "content": {"application/json": {
                                          "schema": answer}}}, **errors},
            }}
    description = (
        f"The prediction routes of model '{mv.name}' version {mv.version} "
        f"({mv.format}) on this server, from its signature: inputs "
        + ", ".join(f"{s.get('name')} {s.get('dtype')} {s.get('shape')}" for s in inputs)
        + "; outputs "
        + ", ".join(f"{s.get('name')} {s.get('dtype')} {s.get('shape')}" for s in outputs)
        + (f"; keys {', '.join(map(str, keys))}" if keys else "")
        + ". " + limits_text(limits)
    )
    return {
        "openapi": base["openapi"],
        "info": {"title": f"TFaaS model {title}", "version": str(mv.version),
                 "description": description},
        "servers": _servers(tfaas_url),
        "security": base["security"],
        "paths": paths,
        "components": {
            "securitySchemes": base["components"]["securitySchemes"],
            "responses": {"Error": base["components"]["responses"]["Error"]},
            "schemas": schemas,
        },
    }
