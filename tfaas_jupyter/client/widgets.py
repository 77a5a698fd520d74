"""A model browser for notebooks (``%tfaas browser``), made of ipywidgets only.

:class:`ModelBrowser` lists the server's models (versions, params, labels), shows the
server status, uploads a model from files picked in the browser, deletes with a
confirmation step and runs one row through a model, showing the outputs as bars.

Every control is a public attribute and every action a plain method called by the
button handlers, so tests drive the browser from Python (set ``.value``, call a
button's ``.click()``) without a web page. Handlers never raise: ipywidgets would
only log the exception where no user looks; the error goes to :attr:`message`
(and :attr:`last_error`) instead.

No matplotlib: the bar chart is FloatProgress bars, which render anywhere widgets do.
"""

from __future__ import annotations

import html
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import ipywidgets as w
import numpy as np

from .api import TFaaSClient, TFaaSClientError
from .magics import output_labels

__all__ = ["ModelBrowser", "bar_chart", "classify_upload"]

#: The model files an upload accepts, by how their name ends.
MODEL_SUFFIXES = (".keras", ".tar.gz", ".tgz", ".zip", ".pb", ".h5")
ACCEPT = ".pb,.json,.txt,.tar.gz,.tgz,.zip,.keras,.h5"


def _model_suffix(filename: str) -> str | None:
    lower = filename.lower()
    for suffix in MODEL_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    return None


def classify_upload(files: Sequence[tuple[str, bytes]]) -> dict[str, tuple[str, bytes]]:
    """Sort picked files into ``model`` (.pb, .keras, .tar.gz, .zip), ``params`` (.json)
    and ``labels`` (.txt). Exactly one model file is needed."""
    found: dict[str, tuple[str, bytes]] = {}
    for filename, content in files:
        base = Path(filename).name
        if _model_suffix(base):
            role = "model"
        elif base.lower().endswith(".json"):
            role = "params"
        elif base.lower().endswith(".txt"):
            role = "labels"
        else:
            raise ValueError(f"{base}: not a model (.pb, .keras, .tar.gz, .zip), "
                             "params (.json) or labels (.txt) file")
        if role in found:
            raise ValueError(f"two {role} files: {found[role][0]} and {base}")
        found[role] = (base, content)
    if "model" not in found:
        raise ValueError("no model file among the files (.pb, .keras, .tar.gz, .zip)")
    return found


def _name_from_file(filename: str) -> str:
    stem = Path(filename).name
    suffix = _model_suffix(stem)
    if suffix:
        stem = stem[: -len(suffix)]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "model"


def bar_chart(
    values: Sequence[float], labels: Sequence[str]
) -> tuple[w.VBox, list[w.FloatProgress]]:
    """One labelled horizontal bar per value. Probabilities (all in [0, 1]) fill
    0..1; other outputs are scaled to the largest magnitude."""
    array = np.asarray(values, dtype=float).reshape(-1)
    finite = array[np.isfinite(array)]
    top = 1.0
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        top = float(np.abs(finite).max()) or 1.0
    bars: list[w.FloatProgress] = []
    rows = []
    best = int(np.nanargmax(array)) if array.size and np.isfinite(array).any() else -1
    for i, (value, label) in enumerate(zip(array, labels)):
        shown = 0.0 if not np.isfinite(value) else min(abs(float(value)), top)
        bar = w.FloatProgress(value=shown, min=0.0, max=top,
                              bar_style="success" if i == best else "info",
                              layout=w.Layout(width="50%"))
        bars.append(bar)
        rows.append(w.HBox([
            w.Label(str(label), layout=w.Layout(width="25%")),
            bar,
            w.Label(f"{value:.4g}"),
        ]))
    return w.VBox(rows), bars


def _ms(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f}"


#: The version dropdown's value for "every version" (versions start at 1).
ALL_VERSIONS = 0


class ModelBrowser:
    """The model browser. ``client`` is a :class:`TFaaSClient` (``%tfaas browser``
    passes the discovered one). Display it as the last expression of a cell."""

    def __init__(self, client: TFaaSClient, *, auto_refresh: bool = False,
                 interval: float = 5.0, load: bool = True) -> None:
        self.client = client
        self.interval = interval
        self.models: list[dict[str, Any]] = []
        self.detail: dict[str, Any] | None = None
        self.status: dict[str, Any] | None = None
        self.predictions: np.ndarray | None = None
        self.bars: list[w.FloatProgress] = []
        self.last_error: str | None = None
        self._timer_stop: threading.Event | None = None
        self._lock = threading.RLock()

        # Header
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       tooltip="Reload the model list and status")
        self.message = w.HTML()
        # Models
        self.models_select = w.Select(options=[], rows=8, description="Models",
                                      layout=w.Layout(width="40%"))
        self.model_info = w.HTML(layout=w.Layout(width="60%"))
        # Try it
        self.values_text = w.Text(placeholder="comma-separated values, e.g. 0.1, 2, 3.5",
                                  description="Values", layout=w.Layout(width="90%"))
        self.key_fields: dict[str, w.FloatText] = {}
        self.inputs_box = w.VBox([self.values_text])
        self.predict_button = w.Button(description="Predict", button_style="primary")
        self.result_box = w.VBox()
        # Upload
        self.name_text = w.Text(description="Name", placeholder="model name")
        self.file_upload = w.FileUpload(accept=ACCEPT, multiple=True,
                                        description="Model files")
        self.upload_button = w.Button(description="Upload", icon="upload",
                                      button_style="primary")
        self.upload_progress = w.FloatProgress(value=0.0, min=0.0, max=1.0,
                                               description="Sent")
        self.upload_message = w.HTML(
            "Pick a <code>.keras</code>, a SavedModel <code>.tar.gz</code>/<code>.zip</code>, "
            "or a <code>.pb</code> with its <code>params.json</code> (and "
            "<code>labels.txt</code>)."
        )
        # Delete
        self.version_dropdown = w.Dropdown(options=[("all versions", ALL_VERSIONS)],
                                           description="Version")
        self.delete_button = w.Button(description="Delete", icon="trash",
                                      button_style="danger")
        self.confirm_button = w.Button(description="Confirm delete", button_style="danger")
        self.cancel_button = w.Button(description="Cancel")
        self.confirm_box = w.HBox([self.confirm_button, self.cancel_button],
                                  layout=w.Layout(display="none"))
        self.delete_message = w.HTML()
        # Status
        self.status_html = w.HTML()
        self.status_button = w.Button(description="Refresh status", icon="refresh")
        self.auto_refresh = w.Checkbox(value=False, description="Auto-refresh")

        self.refresh_button.on_click(lambda _: self._guard(self.refresh))
        self.predict_button.on_click(lambda _: self._guard(self.predict))
        self.upload_button.on_click(lambda _: self._guard(self.upload))
        self.delete_button.on_click(lambda _: self._guard(self.ask_delete))
        self.confirm_button.on_click(lambda _: self._guard(self.confirm_delete))
        self.cancel_button.on_click(lambda _: self._guard(self.cancel_delete))
        self.status_button.on_click(lambda _: self._guard(self.refresh_status))
        self.models_select.observe(self._on_select, names="value")
        self.auto_refresh.observe(self._on_auto_refresh, names="value")

        tabs = w.Tab(children=[
            w.VBox([self.inputs_box, self.predict_button, self.result_box]),
            w.VBox([w.HBox([self.name_text, self.file_upload]),
                    w.HBox([self.upload_button, self.upload_progress]),
                    self.upload_message]),
            w.VBox([w.HBox([self.version_dropdown, self.delete_button]),
                    self.confirm_box, self.delete_message]),
            w.VBox([w.HBox([self.status_button, self.auto_refresh]), self.status_html]),
        ])
        for i, title in enumerate(("Try it", "Upload", "Delete", "Status")):
            tabs.set_title(i, title)
        self.tabs = tabs
        self.widget = w.VBox([
            w.HBox([w.HTML(f"<b>TFaaS</b> <code>{html.escape(client.url)}</code>"),
                    self.refresh_button]),
            self.message,
            w.HBox([self.models_select, self.model_info]),
            tabs,
        ])
        if load:
            self._guard(self.refresh)
        if auto_refresh:
            self.auto_refresh.value = True

    # -- display ---------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Stop auto-refresh and close the widgets."""
        self.auto_refresh.value = False
        self._stop_timer()
        self.widget.close()

    # -- plumbing --------------------------------------------------------------------

    def _guard(self, action: Callable[[], Any]) -> Any:
        """Run a handler; show an error instead of raising it into ipywidgets."""
        try:
            result = action()
        except (TFaaSClientError, ValueError, OSError, TypeError) as exc:
            self._error(str(exc))
            return None
        return result

    def _error(self, text: str) -> None:
        self.last_error = text
        self.message.value = f'<span style="color:#b00">&#9888; {html.escape(text)}</span>'

    def _info(self, text: str) -> None:
        self.last_error = None
        self.message.value = html.escape(text)

    @property
    def selected(self) -> str | None:
        """The selected model's name."""
        return self.models_select.value

    # -- models ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the model list (keeping the selection when it still exists) and status."""
        with self._lock:
            self.models = self.client.models()
            names = [str(m.get("name")) for m in self.models]
            current = self.models_select.value
            self.models_select.options = names
            if names:
                self.models_select.value = current if current in names else names[0]
                if self.models_select.value == current:
                    self._load_detail(current)
            else:
                self.models_select.value = None
                self._load_detail(None)
            self._info(f"{len(names)} model(s)")
        self.refresh_status()

    def select(self, name: str) -> None:
        """Select a model (as a click in the list does)."""
        if name not in self.models_select.options:
            raise ValueError(f"no model {name!r} (refresh?)")
        if self.models_select.value == name:
            self._load_detail(name)
        else:
            self.models_select.value = name

    def _on_select(self, change: dict[str, Any]) -> None:
        self._guard(lambda: self._load_detail(change["new"]))

    def _load_detail(self, name: str | None) -> None:
        self.cancel_delete()
        self.result_box.children = ()
        self.predictions = None
        self.bars = []
        if not name:
            self.detail = None
            self.model_info.value = "<i>no models yet: upload one</i>"
            self.version_dropdown.options = [("all versions", ALL_VERSIONS)]
            self._build_inputs([])
            return
        self.detail = detail = self.client.model(name)
        versions = detail.get("versions") or [detail.get("version")]
        self.version_dropdown.options = [("all versions", ALL_VERSIONS)] + [
            (f"version {v}", v) for v in versions
        ]
        self.version_dropdown.value = ALL_VERSIONS
        self.model_info.value = self._describe(detail)
        keys = detail.get("keys")
        self._build_inputs([str(k) for k in keys] if isinstance(keys, list) else [])

    @staticmethod
    def _describe(detail: dict[str, Any]) -> str:
        def specs(items: Any) -> str:
            return ", ".join(
                f"{html.escape(str(s.get('name')))} {list(s.get('shape') or [])}"
                for s in items or []
            ) or "?"

        labels = detail.get("label_names") or []
        skip = {"name", "version", "versions", "inputs", "outputs", "label_names",
                "version_details", "keys"}
        params = {k: v for k, v in detail.items() if k not in skip and v is not None}
        rows = [
            ("name", html.escape(str(detail.get("name")))),
            ("versions", ", ".join(map(str, detail.get("versions") or []))),
            ("format", html.escape(str(detail.get("format")))),
            ("inputs", specs(detail.get("inputs"))),
            ("outputs", specs(detail.get("outputs"))),
            ("keys", html.escape(", ".join(map(str, detail.get("keys") or []))) or "-"),
            ("labels", html.escape(", ".join(map(str, labels))) or "-"),
            ("params", "<code>" + html.escape(str(params))[:600] + "</code>"),
        ]
        body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{k}</th>"
                       f"<td>{v}</td></tr>" for k, v in rows)
        return f"<table>{body}</table>"

    # -- try it --------------------------------------------------------------------------

    def _build_inputs(self, keys: list[str]) -> None:
        """One number field per key when params list keys; else one comma-separated box."""
        self.key_fields = {k: w.FloatText(value=0.0, description=k,
                                          layout=w.Layout(width="45%")) for k in keys}
        if keys:
            self.inputs_box.children = (w.Box(list(self.key_fields.values()),
                                              layout=w.Layout(flex_flow="row wrap")),)
        else:
            self.inputs_box.children = (self.values_text,)

    def input_row(self) -> tuple[list[float], list[str] | None]:
        """The row the form holds, and its keys (None when values go by position)."""
        if self.key_fields:
            keys = list(self.key_fields)
            return [float(self.key_fields[k].value) for k in keys], keys
        text = self.values_text.value.strip().strip("[]")
        if not text:
            raise ValueError("type the input values, separated by commas")
        try:
            values = [float(v) for v in re.split(r"[,\s]+", text) if v]
        except ValueError:
            raise ValueError(f"not a list of numbers: {self.values_text.value!r}") from None
        return values, None

    def predict(self) -> np.ndarray:
        """Send the form's row to the selected model; show the outputs as bars."""
        name = self.selected
        if not name:
            raise ValueError("select a model first")
        row, keys = self.input_row()
        outputs = np.asarray(self.client.predict(name, row, keys=keys)).reshape(-1)
        self.predictions = outputs
        labels = output_labels(self.detail, outputs.size)
        chart, self.bars = bar_chart(outputs, labels)
        self.result_box.children = (chart,)
        self._info(f"{name}: {outputs.size} output(s)")
        return outputs

    # -- upload ----------------------------------------------------------------------------

    def picked_files(self) -> list[tuple[str, bytes]]:
        """The files in the FileUpload widget as (name, content)."""
        files = []
        for item in self.file_upload.value or ():
            content = item["content"]
            files.append((str(item["name"]), bytes(content)))
        return files

    def upload(self, files: Sequence[tuple[str, bytes]] | None = None) -> dict[str, Any]:
        """Upload the picked files (or ``files``) as the name in the name box (default:
        the model file's name), with progress; select the new model."""
        files = list(files) if files is not None else self.picked_files()
        if not files:
            raise ValueError("pick the model's files first")
        parts = classify_upload(files)
        name = self.name_text.value.strip() or _name_from_file(parts["model"][0])
        self.upload_progress.value = 0.0
        self.upload_message.value = f"uploading {html.escape(name)}..."

        def progress(sent: int, total: int) -> None:
            self.upload_progress.value = sent / total if total else 1.0

        with tempfile.TemporaryDirectory(prefix="tfaas-upload-") as tmp:
            paths: dict[str, str] = {}
            for role, (filename, content) in parts.items():
                path = Path(tmp) / role / filename
                path.parent.mkdir()
                path.write_bytes(content)
                paths[role] = str(path)
            try:
                answer = self.client.upload(name, paths["model"], params=paths.get("params"),
                                            labels=paths.get("labels"), progress=progress)
            except TFaaSClientError as exc:
                self.upload_message.value = (
                    f'<span style="color:#b00">upload failed: {html.escape(str(exc))}</span>')
                raise
        self.upload_progress.value = 1.0
        self.upload_message.value = html.escape(
            f"uploaded {answer.get('name')} version {answer.get('version')} "
            f"({answer.get('format')})")
        self.file_upload.value = ()
        self.refresh()
        self.select(str(answer.get("name")))
        return answer

    # -- delete ------------------------------------------------------------------------------

    def ask_delete(self) -> None:
        """First step of a delete: show Confirm/Cancel and what would go."""
        name = self.selected
        if not name:
            raise ValueError("select a model first")
        version = self.version_dropdown.value or None
        what = f"{name} version {version}" if version is not None else f"{name} (all versions)"
        self.delete_message.value = f"Delete <b>{html.escape(what)}</b>?"
        self.confirm_box.layout.display = "flex"

    @property
    def confirming(self) -> bool:
        """Whether Confirm/Cancel is shown."""
        return self.confirm_box.layout.display != "none"

    def confirm_delete(self) -> dict[str, Any] | None:
        """Second step: delete for real."""
        if not self.confirming:
            return None
        name = self.selected
        version = self.version_dropdown.value or None
        self.confirm_box.layout.display = "none"
        if not name:
            return None
        answer = self.client.delete(name, version)
        self.delete_message.value = html.escape(f"deleted {name}" + (
            f" version {version}" if version is not None else ""))
        self.refresh()
        return answer

    def cancel_delete(self) -> None:
        self.confirm_box.layout.display = "none"
        self.delete_message.value = ""

    # -- status ------------------------------------------------------------------------------

    def refresh_status(self) -> dict[str, Any]:
        """Reload the status panel: worker, loaded models, per-model requests and latency."""
        status = self.client.status()
        self.status = status
        worker = status.get("worker") or {}
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{e.get('requests', 0)}</td>"
            f"<td>{e.get('rows', 0)}</td><td>{e.get('errors', 0)}</td>"
            f"<td>{_ms(e.get('mean_latency_ms'))}</td></tr>"
            for name, e in (status.get("models") or {}).items()
        )
        loaded = ", ".join(status.get("models_loaded") or []) or "none"
        self.status_html.value = (
            f"<p>worker <b>{html.escape(str(worker.get('summary') or worker.get('state', '?')))}"
            "</b>, TensorFlow "
            f"{html.escape(str(status.get('tensorflow') or '?'))}; loaded: "
            f"{html.escape(loaded)}; requests GET {status.get('getRequests', 0)} / POST "
            f"{status.get('postRequests', 0)} / DELETE {status.get('deleteRequests', 0)}, "
            f"errors {status.get('errors', 0)}</p>"
            "<table><tr><th>model</th><th>requests</th><th>rows</th><th>errors</th>"
            f"<th>mean ms</th></tr>{rows}</table>"
        )
        return status

    def _on_auto_refresh(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._start_timer()
        else:
            self._stop_timer()

    def _start_timer(self) -> None:
        self._stop_timer()
        stop = self._timer_stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.interval):
                self._guard(self.refresh_status)

        threading.Thread(target=loop, name="tfaas-browser-refresh", daemon=True).start()

    def _stop_timer(self) -> None:
        if self._timer_stop is not None:
            self._timer_stop.set()
            self._timer_stop = None
