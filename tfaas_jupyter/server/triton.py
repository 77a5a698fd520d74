"""Triton's model configuration of a model: what ``config.pbtxt`` of the export's Triton
model repository holds, and what ``GET v2/models/NAME[/versions/V]/config`` answers.

One configuration, two forms: the JSON form Triton's HTTP API answers (protobuf's JSON
mapping with the ``.proto`` field names, integers as numbers) and the protobuf text format
of ``config.pbtxt``, both of ``model_config.proto``'s ``ModelConfig``. The tensors are
named by the exported SavedModel's signature keys, which is how Triton's TensorFlow
backend finds them in the ``serving_default`` signature.
"""

from __future__ import annotations

import json
from typing import Any

from ..v2binary import v2_datatype
from ..worker.signaturekeys import signature_keys
from .batching import BatchConfig, rows_independent
from .keys import Grant
from .modelfiles import ModelVersion
from .service import TFaaS

PLATFORM = "tensorflow_savedmodel"
#: The SavedModel signature the export writes and Triton's TensorFlow backend reads.
SIGNATURE = "serving_default"
#: The labels file beside config.pbtxt, named by the output that answers one score per label.
LABELS_FILE = "labels.txt"
#: ModelConfig fields whose values are enums (written unquoted in the text format).
_ENUMS = {"data_type"}
#: ModelConfig fields that are protobuf maps (``key``/``value`` entries in the text format).
_MAPS = {"parameters"}


def triton_datatype(numpy_name: str | None) -> str:
    """Triton's ``DataType`` of a numpy dtype name (``float32`` -> ``TYPE_FP32``)."""
    v2 = v2_datatype(numpy_name)
    return "TYPE_STRING" if v2 == "BYTES" else f"TYPE_{v2}"


def _dims(shape: list[int | None] | None) -> list[int]:
    return [-1] if shape is None else [-1 if d is None or d < 0 else int(d) for d in shape]


def _batched(specs: list[dict[str, Any]]) -> bool:
    """Whether every tensor's first dimension is a variable batch dimension."""
    return all(s.get("shape") and s["shape"][0] in (None, -1) for s in specs)


def _tensors(specs: list[dict[str, Any]], keys: list[str], batched: bool) -> list[dict[str, Any]]:
    tensors = []
    for spec, key in zip(specs, keys):
        dims = _dims(spec.get("shape"))[1 if batched else 0:]
        tensor: dict[str, Any] = {"name": key, "data_type": triton_datatype(spec.get("dtype"))}
        if dims:
            tensor["dims"] = dims
        else:  # one value per row: Triton wants dims, reshaped away
            tensor.update(dims=[1], reshape={"shape": []})
        tensors.append(tensor)
    return tensors


def _label_output(outputs: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    """The output that answers one score per label (else the first)."""
    for out in outputs:
        if out["dims"] and out["dims"][-1] == len(labels):
            return out
    return outputs[0]


def model_config(mv: ModelVersion, signature: dict[str, Any], batch: BatchConfig,
                 served_versions: list[int] | None = None) -> dict[str, Any]:
    """The ModelConfig (JSON form) of ``mv``'s model: its tensors and labels from ``mv``;
    ``served_versions`` lists the versions Triton loads (None: every version)."""
    inputs, outputs = signature.get("inputs") or [], signature.get("outputs") or []
    policy = batch.overridden(mv.params)
    batched = policy.enabled and rows_independent(mv.params) and _batched(inputs + outputs)
    config: dict[str, Any] = {
        "name": mv.name,
        "platform": PLATFORM,
        "backend": "tensorflow",
        "version_policy": (
            {"all": {}} if served_versions is None
            else {"specific": {"versions": list(served_versions)}}
        ),
        "max_batch_size": policy.max_batch_size if batched else 0,
        "input": _tensors(inputs, signature_keys([s["name"] for s in inputs], "input"),
                          batched),
        "output": _tensors(outputs, signature_keys([s["name"] for s in outputs], "output"),
                           batched),
    }
    if mv.labels and config["output"]:
        _label_output(config["output"], mv.labels)["label_filename"] = LABELS_FILE
    if batched:
        delay = policy.max_queue_delay_us
        config["dynamic_batching"] = {"max_queue_delay_microseconds": delay} if delay else {}
    config["parameters"] = {"TF_SIGNATURE_DEF": {"string_value": SIGNATURE}}
    return config


def _tensor_form(config: dict[str, Any]) -> Any:
    return [(t["name"], t["data_type"], t["dims"], t.get("reshape")) for t in config["input"]] + [
        (t["name"], t["data_type"], t["dims"], t.get("reshape")) for t in config["output"]
    ]


async def repository_config(service: TFaaS, mv: ModelVersion,
                            versions: list[ModelVersion] | None = None) -> dict[str, Any]:
    """The configuration of ``mv``'s model in a Triton repository holding ``versions``
    (default: all of them): ``mv``'s tensors; the versions whose tensors are the same are
    the ones Triton serves (all, or a ``specific`` list). Loads each version's signature."""
    batch = _batch_defaults(service)
    config = model_config(mv, await service.signature(mv), batch)
    if versions is None:
        versions = service.repository.versions(mv.name)
    same = []
    for other in versions:
        other_config = model_config(other, await service.signature(other), batch)
        if _tensor_form(other_config) == _tensor_form(config):
            same.append(other.version)
    if len(same) != len(versions):
        config["version_policy"] = {"specific": {"versions": same}}
    return config


async def served_config(service: TFaaS, name: str, version: str | None,
                        grant: Grant | None = None) -> dict[str, Any]:
    """``GET v2/models/NAME[/versions/V]/config``: the configuration the export writes
    for the model (by ``V``'s tensors when a version is named)."""
    return await repository_config(service, service.resolve(name, version, grant=grant))


def _batch_defaults(service: TFaaS) -> BatchConfig:
    """The server's batching policy (the runner's, when it batches)."""
    defaults = getattr(service.runner, "defaults", None)
    return defaults if isinstance(defaults, BatchConfig) else BatchConfig()


def _scalar(field: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return str(value) if field in _ENUMS else json.dumps(str(value))


def _message_lines(message: dict[str, Any], indent: str) -> list[str]:
    lines = []
    for field, value in message.items():
        if field in _MAPS:
            for key, entry in value.items():
                lines.append(f"{indent}{field} {{")
                lines.append(f"{indent}  key: {json.dumps(key)}")
                lines += _nested("value", entry, indent + "  ")
                lines.append(f"{indent}}}")
        elif isinstance(value, dict):
            lines += _nested(field, value, indent)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines += _nested(field, item, indent)
        elif isinstance(value, list):
            lines.append(f"{indent}{field}: [{', '.join(_scalar(field, v) for v in value)}]")
        else:
            lines.append(f"{indent}{field}: {_scalar(field, value)}")
    return lines


def _nested(field: str, message: dict[str, Any], indent: str) -> list[str]:
    if not message:
        return [f"{indent}{field} {{}}"]
    return [f"{indent}{field} {{", *_message_lines(message, indent + "  "), f"{indent}}}"]


def config_pbtxt(config: dict[str, Any]) -> str:
    """``config.pbtxt``: the configuration in protobuf's text format."""
    return "\n".join(_message_lines(config, "")) + "\n"
