"""How the client side shows things to a person: output labels, model specs, tables of
models and params, the server's status, and the one line said when a kernel lacks an
optional package.

Shared by the ``%tfaas`` magics (text, DataFrames) and the model browser widget (whose
HTML is in widgets.py), so both show the same thing the same way; the status strip and
numbers as the JupyterLab panel writes them, in the shared vocabulary's words. Needs
numpy only; pandas is imported where a DataFrame is made, and a kernel without it gets
:func:`missing_extra`'s line from the magics.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from .vocabulary import WORDS, word

__all__ = [
    "STATUS_STRIP",
    "OPTIONAL_EXTRAS",
    "format_ms",
    "format_status",
    "format_value",
    "input_width",
    "missing_extra",
    "models_frame",
    "output_labels",
    "prediction_count",
    "params_rows",
    "predictions_frame",
    "spec_text",
    "specs_text",
    "status_headline",
    "status_rows",
    "status_strip",
    "worker_text",
]

#: Optional packages of the client side, and the extra of tfaas-jupyter that installs each.
OPTIONAL_EXTRAS = {
    "pandas": "notebook",
    "ipywidgets": "notebook",
    "tqdm": "notebook",
    "IPython": "notebook",
    "tensorflow": "tf",
    "keras": "tf",
}


def missing_extra(what: str, module: str) -> str | None:
    """The one line for ``what`` failing because ``module`` is not installed, naming
    the extra to install; None when ``module`` is none of our optional packages."""
    top = module.split(".")[0]
    extra = OPTIONAL_EXTRAS.get(top)
    if extra is None:
        return None
    return (f"{what} needs {top}, which this Python does not have: "
            f"pip install 'tfaas-jupyter[{extra}]' (then restart the kernel)")


# -- models --------------------------------------------------------------------------


def output_labels(model: dict[str, Any] | None, width: int) -> list[str]:
    """Column names for ``width`` outputs: the model's label names when they fit,
    else ``output_0..n``."""
    labels = list((model or {}).get("label_names") or (model or {}).get("labels") or [])
    if len(labels) == width and len(set(map(str, labels))) == width:
        return [str(label) for label in labels]
    return [f"output_{i}" for i in range(width)]


def input_width(model: dict[str, Any] | None) -> int | None:
    """How many values one row of ``model`` takes (all inputs flattened), or None when a
    dimension is unknown."""
    total = 0
    for spec in (model or {}).get("inputs") or []:
        size = 1
        for dim in list(spec.get("shape") or [])[1:]:
            if dim is None or dim < 0:
                return None
            size *= int(dim)
        total += size
    return total or None


def spec_text(spec: dict[str, Any]) -> str:
    """``name float32 [?, 42]``: a tensor's name, dtype and shape, ``?`` for a free
    dimension (as the JupyterLab panel writes it)."""
    shape = spec.get("shape")
    parts = [str(spec.get("name") or ""), str(spec.get("dtype") or "")]
    if isinstance(shape, list):
        parts.append("[" + ", ".join("?" if d is None or d < 0 else str(d)
                                     for d in shape) + "]")
    return " ".join(part for part in parts if part) or "?"


def specs_text(specs: Sequence[dict[str, Any]] | None) -> str:
    return ", ".join(spec_text(s) for s in specs or []) or "?"


#: Fields of a model's description that are shown on their own (or are the server's
#: bookkeeping), not among its params: the panel's list (labextension/src/models.ts).
_DESCRIBED = {"name", "version", "versions", "inputs", "outputs", "label_names",
              "version_details", "version_labels", "keys", "format", "created", "timestamp"}


def version_labels_text(detail: dict[str, Any]) -> str:
    """``stable: 3, canary: 4`` (the model's version labels), ``-`` when it has none."""
    labels = detail.get("version_labels") or {}
    return ", ".join(f"{label}: {version}" for label, version in labels.items()) or "-"


def params_rows(detail: dict[str, Any]) -> list[tuple[str, str]]:
    """The model's other params.json entries as (key, readable value) rows, by key."""
    rows = []
    for key, value in sorted(detail.items(), key=lambda item: str(item[0])):
        if key in _DESCRIBED or value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        rows.append((str(key), text))
    return rows


def predictions_frame(outputs: Any, model: dict[str, Any] | None = None, index: Any = None):
    """Outputs as a pandas DataFrame with one column per label (pandas needed)."""
    import pandas as pd

    array = np.atleast_2d(np.asarray(outputs))
    columns = output_labels(model, array.shape[1])
    if index is not None and len(index) != array.shape[0]:
        index = None
    return pd.DataFrame(array, columns=columns, index=index)


def models_frame(models: list[dict[str, Any]]):
    """/models as a DataFrame, one row per model (pandas needed)."""
    import pandas as pd

    rows = []
    for m in models:
        labels = m.get("label_names") or []
        rows.append({
            "name": m.get("name"),
            "version": m.get("version"),
            "versions": m.get("versions"),
            "format": m.get("format"),
            "inputs": specs_text(m.get("inputs")),
            "outputs": specs_text(m.get("outputs")),
            "keys": len(m.get("keys") or []) or None,
            "labels": ", ".join(map(str, labels[:8])) + (" ..." if len(labels) > 8 else ""),
            "created": m.get("created"),
        })
    return pd.DataFrame(rows).set_index("name")


# -- status --------------------------------------------------------------------------


def status_headline(status: dict[str, Any]) -> list[str]:
    """The status's server-wide lines: worker, models on disk and loaded, counts."""
    worker = status.get("worker") or {}
    return [
        f"worker: {worker.get('summary') or worker.get('state', '?')}, "
        f"TensorFlow {status.get('tensorflow') or '?'}",
        f"models on disk: {', '.join(map(str, status.get('models_on_disk') or [])) or 'none'}",
        f"models loaded: {', '.join(map(str, status.get('models_loaded') or [])) or 'none'}",
        f"requests: GET {status.get('getRequests', 0)}, POST {status.get('postRequests', 0)}, "
        f"DELETE {status.get('deleteRequests', 0)}, errors {status.get('errors', 0)}",
    ]


def format_value(value: float) -> str:
    """An output as the panel shows it: an integer as is, else six significant digits
    (JavaScript's ``toPrecision(6)``, trailing zeros kept)."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:#.6g}".replace("e+0", "e+").replace("e-0", "e-")


def format_ms(ms: float) -> str:
    """``12.3 ms``, ``1.20 s``: a latency to three significant digits."""
    if ms >= 1000:
        return f"{ms / 1000:#.3g} s"
    return f"{ms:#.3g} ms"


def worker_text(state: str) -> str:
    """The worker's state in the shared vocabulary's words (an unknown one as it is)."""
    return WORDS.get(f"worker_{state}", state)


#: The status strip's cells, in order; each is labelled by the word ``status_KEY``.
STATUS_STRIP = ("worker", "tensorflow", "loaded", "rate", "p99")


def status_strip(status: dict[str, Any], rate: float | None) -> dict[str, str]:
    """The status strip the panel shows (labextension/src/status.ts, ``statusView``):
    worker state, TensorFlow version, loaded models, the request rate since the last
    poll (None before a second one) and the worst p99 latency, in the shared words."""
    worker = status.get("worker") or {}
    state = str(worker.get("state") or "unknown")
    problem = worker.get("error") or (worker.get("last_error") if state == "failed" else "")
    loaded = [str(name) for name in status.get("models_loaded") or []]
    p99s = [float(entry["p99_latency_ms"]) for entry in (status.get("models") or {}).values()
            if isinstance(entry, dict)
            and isinstance(entry.get("p99_latency_ms"), (int, float))]
    none = word("status_no_value")
    return {
        "worker": (word("worker_problem", state=worker_text(state), problem=problem)
                   if problem else worker_text(state)),
        "tensorflow": str(status.get("tensorflow") or word("status_tensorflow_unknown")),
        "loaded": ", ".join(loaded) or word("status_none"),
        "rate": none if rate is None else word(
            "status_rate_value", rate=f"{rate:.2f}" if rate < 10 else f"{rate:.0f}"),
        "p99": word("status_p99_value", latency=format_ms(max(p99s))) if p99s else none,
    }


def prediction_count(status: dict[str, Any]) -> int:
    """Predictions served so far: the sum of every model's ``requests``."""
    return sum(int(entry.get("requests") or 0)
               for entry in (status.get("models") or {}).values()
               if isinstance(entry, dict) and isinstance(entry.get("requests"), int))


def status_rows(status: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Per model: requests, rows, errors, mean latency (ms), as text."""
    rows = []
    for name, entry in (status.get("models") or {}).items():
        latency = entry.get("mean_latency_ms")
        rows.append((str(name), str(entry.get("requests", 0)), str(entry.get("rows", 0)),
                     str(entry.get("errors", 0)),
                     "" if latency is None else f"{float(latency):.1f}"))
    return rows


def format_status(status: dict[str, Any], where: str | None = None) -> str:
    """The status as a few lines of text: where, worker, models, per-model counts."""
    lines = [f"tfaas {status.get('version', '?')} at {where or '?'}", *status_headline(status)]
    for name, requests, rows, errors, latency in status_rows(status):
        lines.append(f"  {name}: {requests} requests, {rows} rows, {errors} errors"
                     + (f", mean {latency} ms" if latency else ""))
    return "\n".join(lines)
