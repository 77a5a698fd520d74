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
import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..examplerow import input_width
from .vocabulary import WORDS, word

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "STATUS_STRIP",
    "OPTIONAL_EXTRAS",
    "format_ms",
    "format_time",
    "text_table",
    "KEYS_NOTE",
    "keys_frame",
    "keys_rows",
    "model_rows",
    "format_status",
    "devices_lines",
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
    "model_status_line",
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


# -- times and cells ---------------------------------------------------------------------


def format_time(value: Any, missing: str = "never") -> str:
    """A time as a local date and time to the minute (``2026-12-07 10:41``): seconds
    since the epoch, or an ISO 8601 string (``2026-12-07T09:41:00Z``, UTC when it says
    no zone); ``missing`` for none."""
    when: datetime | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value) and value > 0:
            when = datetime.fromtimestamp(value, timezone.utc)
    elif isinstance(value, str) and value.strip():
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return value
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    if when is None:
        return missing
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def _listed(values: Any, empty: str = "") -> str:
    """A list as ``a, b`` (``empty`` when there is none)."""
    if not values:
        return empty
    if isinstance(values, (list, tuple)):
        return ", ".join(map(str, values))
    return str(values)


def text_table(rows: Sequence[dict[str, str]], columns: Sequence[str]) -> str:
    """Rows of text cells as a plain table: a header, then one line per row, each column
    as wide as its widest cell (the last one unpadded)."""
    cells = [list(columns)] + [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in cells)


# -- models --------------------------------------------------------------------------


def output_labels(model: dict[str, Any] | None, width: int) -> list[str]:
    """Column names for ``width`` outputs: the model's label names when they fit,
    else ``output_0..n``."""
    labels = list((model or {}).get("label_names") or (model or {}).get("labels") or [])
    if len(labels) == width and len(set(map(str, labels))) == width:
        return [str(label) for label in labels]
    return [f"output_{i}" for i in range(width)]


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


def predictions_frame(outputs: Any, model: dict[str, Any] | None = None,
                      index: Any = None) -> pd.DataFrame:
    """Outputs as a pandas DataFrame with one column per label (pandas needed)."""
    import pandas as pd

    array = np.atleast_2d(np.asarray(outputs))
    columns = output_labels(model, array.shape[1])
    if index is not None and len(index) != array.shape[0]:
        index = None
    return pd.DataFrame(array, columns=columns, index=index)


#: The columns of a model listing, for people (``%tfaas models``, ``tfaas --models``).
MODEL_COLUMNS = ("name", "version", "versions", "format", "inputs", "outputs", "labels",
                 "created")


def model_rows(models: list[dict[str, Any]]) -> list[dict[str, str]]:
    """/models as text cells, one dict per model, in :data:`MODEL_COLUMNS`: lists as
    ``a, b``, times local, and an empty cell (never None) where a model has nothing."""
    rows = []
    for m in models:
        labels = list(m.get("label_names") or [])
        rows.append({
            "name": str(m.get("name") or ""),
            "version": "" if m.get("version") is None else str(m.get("version")),
            "versions": _listed(m.get("versions")),
            "format": str(m.get("format") or ""),
            "inputs": specs_text(m.get("inputs")),
            "outputs": specs_text(m.get("outputs")),
            "labels": _listed(labels[:8]) + (" ..." if len(labels) > 8 else ""),
            "created": format_time(m.get("created"), missing=""),
        })
    return rows


def models_frame(models: list[dict[str, Any]]) -> pd.DataFrame:
    """/models as a DataFrame, one row per model, as :func:`model_rows` writes it
    (pandas needed)."""
    import pandas as pd

    return pd.DataFrame(model_rows(models), columns=list(MODEL_COLUMNS)).set_index("name")


# -- keys ----------------------------------------------------------------------------

#: Where keys live, said with every key listing: keys are the user's, not a server's.
KEYS_NOTE = ("Keys belong to the server's user: they are kept (as hashes) in tfaas/keys.json "
             "of that user's Jupyter data folder (jupyter --data-dir), so every Jupyter "
             "server of this user lists and accepts them.")

KEY_COLUMNS = ("name", "models", "scopes", "created", "last used")


def keys_rows(keys: list[dict[str, Any]]) -> list[dict[str, str]]:
    """/keys as text cells: ``all models`` for a key without a model list, times local,
    ``never`` for a key not used yet."""
    return [{
        "name": str(k.get("name") or ""),
        "models": _listed(k.get("models"), "all models"),
        "scopes": _listed(k.get("scopes")),
        "created": format_time(k.get("created"), missing=""),
        "last used": format_time(k.get("last_used")),
    } for k in keys]


def keys_frame(keys: list[dict[str, Any]]) -> pd.DataFrame:
    """/keys as a DataFrame indexed by name (pandas needed)."""
    import pandas as pd

    return pd.DataFrame(keys_rows(keys), columns=list(KEY_COLUMNS)).set_index("name")


# -- status --------------------------------------------------------------------------


def status_headline(status: dict[str, Any]) -> list[str]:
    """The status's server-wide lines: worker, models on disk and loaded, counts."""
    worker = status.get("worker") or {}
    return [
        f"worker: {worker.get('summary') or worker.get('state', '?')}, "
        f"TensorFlow {status.get('tensorflow') or '?'}",
        f"models on disk: {', '.join(map(str, status.get('models_on_disk') or [])) or 'none'}",
        f"models loaded: {loaded_text(status)}",
        f"requests: GET {status.get('getRequests', 0)}, POST {status.get('postRequests', 0)}, "
        f"DELETE {status.get('deleteRequests', 0)}, errors {status.get('errors', 0)}",
    ]


def short_device(name: Any) -> str:
    """``GPU:0`` of TensorFlow's ``/job:localhost/replica:0/task:0/device:GPU:0``."""
    return str(name or "?").rsplit("device:", 1)[-1]


def devices_lines(devices: Any) -> list[str]:
    """The worker's devices (each GPU with its memory in use and peak), its GPU
    settings and each loaded model's device, as ``%tfaas status`` prints them."""
    if not isinstance(devices, dict):
        return []
    shown = []
    for device in devices.get("devices") or []:
        name = short_device(device.get("name"))
        used, peak = device.get("memory_in_use"), device.get("memory_peak")
        if isinstance(used, int) and isinstance(peak, int):
            name += f" {used / 2**20:.1f} MiB in use (peak {peak / 2**20:.1f} MiB)"
        shown.append(name)
    gpus = devices.get("gpus")
    limit = devices.get("gpu_memory_limit_mib") or 0
    settings = (f"GPUs {'as the environment says' if gpus is None else repr(gpus)}, "
                + (f"at most {limit} MiB each" if limit else
                   "memory growth" if devices.get("gpu_memory_growth", True) else
                   "all memory at first use"))
    lines = [f"devices: {', '.join(shown) or 'known once the worker runs'} ({settings})"]
    for key, device in sorted((devices.get("models") or {}).items()):
        lines.append(f"  {key.split('@', 1)[0]} runs on {short_device(device)}")
    return lines


def format_value(value: float) -> str:
    """An output as the panel shows it: an integer as is, else six significant digits
    (JavaScript's ``toPrecision(6)``, trailing zeros kept)."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:#.6g}".replace("e+0", "e+").replace("e-0", "e-")


def format_mib(n: float) -> str:
    """``1.50 MiB``: bytes in MiB to three significant digits (the panel's formatMiB)."""
    # JavaScript's toPrecision(3): 1.50 keeps its zero, 1.23e+3 for a GiB and more
    return f"{n / 2**20:#.3g}".rstrip(".").replace("e+0", "e+") + " MiB"


def devices_text(devices: Any) -> str:
    """The worker's devices as the panel's strip shows them (status.ts, ``devicesText``):
    each GPU with its memory in use and peak, the CPU by name."""
    listed = (devices.get("devices") if isinstance(devices, dict) else None) or []
    parts = []
    for device in listed:
        name = short_device(device.get("name"))
        used, peak = device.get("memory_in_use"), device.get("memory_peak")
        if isinstance(used, (int, float)) and isinstance(peak, (int, float)):
            parts.append(word("status_gpu_memory_value", device=name,
                              used=format_mib(used), peak=format_mib(peak)))
        else:
            parts.append(name)
    return ", ".join(parts) or word("status_no_value")


def format_ms(ms: float) -> str:
    """``12.3 ms``, ``1.20 s``: a latency to three significant digits."""
    # JavaScript's toPrecision(3), as the panel: 1.20 keeps its zero, 100 no point
    if ms >= 1000:
        return f"{ms / 1000:#.3g}".rstrip(".") + " s"
    return f"{ms:#.3g}".rstrip(".") + " ms"


def bucket_counts(hist: Any, label: Callable[[float | None, float], str]
                  ) -> list[tuple[str, str, int]]:
    """The buckets of a status histogram (cumulative ``[upper bound, count]`` pairs)
    anything fell in, as ``(upper bound, label, own count)``, as the panel draws them
    (batching.ts, ``bucketCounts``); ``label(low, high)`` names a bucket by the bound
    below it and its own."""
    shown = []
    below, low = 0, None
    for le, cumulative in (hist.get("buckets") if isinstance(hist, dict) else None) or []:
        high = float("inf") if le == "+Inf" else float(le)
        if cumulative > below:
            shown.append((str(le), label(low, high), int(cumulative - below)))
        below, low = cumulative, high
    return shown


def rows_label(low: float | None, high: float) -> str:
    """``1``, ``3–4``, ``> 4096``: the rows of a batch-size bucket."""
    if high == float("inf"):
        return word("batching_over", bound=f"{low:g}")
    first = high if low is None else int(low) + 1
    return f"{high:g}" if first >= high else word("batching_range", low=first, high=f"{high:g}")


def wait_label(low: float | None, high: float) -> str:
    """``0``, ``≤ 0.250 ms``, ``> 1.00 s``: a queue-wait bucket (bounds in seconds)."""
    if high == float("inf"):
        return word("batching_over", bound=format_ms((low or 0) * 1000))
    return "0" if high == 0 else word("batching_at_most", bound=format_ms(high * 1000))


def batching_views(status: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """What the batcher did for each version of model ``name`` the status counts, oldest
    first, as the panel shows it (batching.ts, ``batchingViews``)."""
    docs = ((status.get("batching") or {}).get("models") or {}).values()
    views = [{
        "version": doc.get("version") if isinstance(doc.get("version"), int) else None,
        "requests": doc.get("requests") or 0,
        "calls": doc.get("worker_calls") or 0,
        "rows": doc.get("rows") or 0,
        "mean_wait_ms": doc.get("queue_wait_mean_ms"),
        "sizes": bucket_counts(doc.get("batch_size_histogram"), rows_label),
        "waits": bucket_counts(doc.get("queue_wait_seconds_histogram"), wait_label),
    } for doc in docs if isinstance(doc, dict) and doc.get("model") == name]
    return sorted(views, key=lambda v: v["version"] or 0)


def worker_text(state: str) -> str:
    """The worker's state in the shared vocabulary's words (an unknown one as it is)."""
    return WORDS.get(f"worker_{state}", state)


def loaded_text(status: dict[str, Any]) -> str:
    """The model versions the worker holds, each with its number (``vk v1, vk v2``), as
    the panel's strip shows them (status.ts, ``loadedText``): from ``versions_loaded``,
    else (an older server) the names of ``models_loaded``."""
    versions = status.get("versions_loaded")
    if isinstance(versions, list):
        loaded = [word("status_loaded_version", name=e.get("name") or "?", version=e["version"])
                  if isinstance(e.get("version"), int) else str(e.get("name") or "?")
                  for e in versions if isinstance(e, dict)]
    else:
        loaded = [str(name) for name in status.get("models_loaded") or []]
    return ", ".join(loaded) or word("status_none")


#: The status strip's cells, in order; each is labelled by the word ``status_KEY``.
STATUS_STRIP = ("worker", "tensorflow", "loaded", "rate", "p99", "cold", "devices")


def status_strip(status: dict[str, Any], rate: float | None) -> dict[str, str]:
    """The status strip the panel shows (labextension/src/status.ts, ``statusView``):
    worker state, TensorFlow version, loaded models, the request rate since the last
    poll (None before a second one), the worst p99 latency of warm requests, the
    cold starts (how many, their mean time) and the worker's devices, in the shared words."""
    worker = status.get("worker") or {}
    state = str(worker.get("state") or "unknown")
    problem = worker.get("error") or (worker.get("last_error") if state == "failed" else "")
    p99s = [float(entry["p99_latency_ms"]) for entry in (status.get("models") or {}).values()
            if isinstance(entry, dict)
            and isinstance(entry.get("p99_latency_ms"), (int, float))]
    colds = [(int(entry.get("cold_starts") or 0), float(entry.get("cold_start_mean_ms") or 0))
             for entry in (status.get("models") or {}).values() if isinstance(entry, dict)]
    cold_count = sum(n for n, _ in colds)
    none = word("status_no_value")
    return {
        "worker": (word("worker_problem", state=worker_text(state), problem=problem)
                   if problem else worker_text(state)),
        "tensorflow": str(status.get("tensorflow") or word("status_tensorflow_unknown")),
        "loaded": loaded_text(status),
        "rate": none if rate is None else word(
            "status_rate_value", rate=f"{rate:.2f}" if rate < 10 else f"{rate:.0f}"),
        "p99": word("status_p99_value", latency=format_ms(max(p99s))) if p99s else none,
        "cold": word("status_cold_value", count=cold_count, latency=format_ms(
            sum(n * ms for n, ms in colds) / cold_count)) if cold_count else none,
        "devices": devices_text(status.get("devices")),
    }


def prediction_count(status: dict[str, Any]) -> int:
    """Predictions served so far: the sum of every model's ``requests``."""
    return sum(int(entry.get("requests") or 0)
               for entry in (status.get("models") or {}).values()
               if isinstance(entry, dict) and isinstance(entry.get("requests"), int))


def _counted(n: int, noun: str) -> str:
    """``1 request``, ``2 requests``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def model_status_line(name: str, entry: dict[str, Any]) -> str:
    """One model's figures: ``vk: 12 requests, 12 rows, 0 errors; warm mean 1.20 ms,
    p99 ≤ 2.50 ms; 1 cold start, 6.70 s``."""
    line = f"{name}: " + ", ".join(
        _counted(int(entry.get(key) or 0), key[:-1]) for key in ("requests", "rows", "errors"))
    mean, p99 = entry.get("mean_latency_ms"), entry.get("p99_latency_ms")
    if isinstance(mean, (int, float)):
        line += f"; warm mean {format_ms(float(mean))}"
        if isinstance(p99, (int, float)):
            line += f", p99 ≤ {format_ms(float(p99))}"
    cold = int(entry.get("cold_starts") or 0)
    if cold:
        line += (f"; {_counted(cold, 'cold start')}, "
                 f"{'mean ' if cold > 1 else ''}"
                 f"{format_ms(float(entry.get('cold_start_mean_ms') or 0))}")
    return line


def format_status(status: dict[str, Any], where: str | None = None) -> str:
    """The status as a few lines of text: where, worker, models, per-model figures."""
    lines = [f"tfaas {status.get('version', '?')} at {where or '?'}", *status_headline(status),
             *devices_lines(status.get("devices"))]
    for name, entry in (status.get("models") or {}).items():
        if isinstance(entry, dict):
            lines.append("  " + model_status_line(str(name), entry))
    return "\n".join(lines)
