"""A model browser for notebooks (``%tfaas browser``), made of ipywidgets only.

:class:`ModelBrowser` lists the server's models (versions, params, labels), shows the
server status, uploads a model from files picked in the browser, deletes with a
confirmation step and runs one row through a model, showing the outputs as bars.

Every control is a public attribute and every action a plain method called by the
button handlers, so tests drive the browser from Python (set ``.value``, call a
button's ``.click()``) without a web page. Handlers never raise: ipywidgets would
only log the exception where no user looks; the error is shown next to the form it
belongs to (try it, upload, delete, status; the model list's in the header) and kept
in :attr:`last_error`. Everything shown as HTML is escaped.

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
from .present import (
    STATUS_COLUMNS,
    html_table,
    input_width,
    output_labels,
    params_rows,
    specs_text,
    status_headline,
    status_rows,
    version_labels_text,
)

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
            w.Label(str(label), tooltip=str(label), layout=w.Layout(width="25%")),
            bar,
            w.Label(f"{value:.4g}"),
        ]))
    return w.VBox(rows), bars


#: The version dropdown's value for "every version" (versions start at 1).
ALL_VERSIONS = 0


def _error_html(text: str) -> str:
    return f'<span style="color:#b00">&#9888; {html.escape(text)}</span>'


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

        # Header: the server, the model count and the selected model (or the list's error)
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       tooltip="Reload the model list and status")
        self.message = w.HTML()
        # Models
        self.models_select = w.Select(options=[], rows=8, description="Models",
                                      layout=w.Layout(width="40%"))
        self.model_info = w.HTML(layout=w.Layout(width="60%"))
        # Try it
        self.values_text = w.Text(placeholder="values separated by commas",
                                  description="Values", layout=w.Layout(width="90%"))
        self.key_fields: dict[str, w.FloatText] = {}
        self.inputs_box = w.VBox([self.values_text])
        self.predict_button = w.Button(description="Predict", button_style="primary",
                                       tooltip="Send this row to the selected model")
        self.try_message = w.HTML()
        self.result_box = w.VBox()
        # Upload
        self.name_text = w.Text(description="Name", placeholder="model name")
        self.file_upload = w.FileUpload(accept=ACCEPT, multiple=True,
                                        description="Model files",
                                        tooltip="Pick the model file (and params.json, "
                                                "labels.txt)")
        self.upload_button = w.Button(description="Upload", icon="upload",
                                      button_style="primary",
                                      tooltip="Upload the picked files under this name")
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
                                      button_style="danger",
                                      tooltip="Delete the selected model (asks first)")
        self.confirm_button = w.Button(description="Confirm delete", button_style="danger",
                                       tooltip="Delete it for good")
        self.cancel_button = w.Button(description="Cancel", tooltip="Keep the model")
        self.confirm_box = w.HBox([self.confirm_button, self.cancel_button],
                                  layout=w.Layout(display="none"))
        self.delete_message = w.HTML()
        # Status
        self.status_html = w.HTML()
        self.status_message = w.HTML()
        self.status_button = w.Button(description="Refresh status", icon="refresh",
                                      tooltip="Reload the server's status")
        self.auto_refresh = w.Checkbox(value=False, description="Auto-refresh")

        self.refresh_button.on_click(lambda _: self._guard(self.refresh, self.message))
        self.predict_button.on_click(lambda _: self._guard(self.predict, self.try_message))
        self.upload_button.on_click(lambda _: self._guard(self.upload, self.upload_message))
        self.delete_button.on_click(lambda _: self._guard(self.ask_delete, self.delete_message))
        self.confirm_button.on_click(
            lambda _: self._guard(self.confirm_delete, self.delete_message))
        self.cancel_button.on_click(lambda _: self._guard(self.cancel_delete, self.delete_message))
        self.status_button.on_click(
            lambda _: self._guard(self.refresh_status, self.status_message))
        self.models_select.observe(self._on_select, names="value")
        self.auto_refresh.observe(self._on_auto_refresh, names="value")

        tabs = w.Tab(children=[
            w.VBox([self.inputs_box, self.predict_button, self.try_message, self.result_box]),
            w.VBox([w.HBox([self.name_text, self.file_upload]),
                    w.HBox([self.upload_button, self.upload_progress]),
                    self.upload_message]),
            w.VBox([w.HBox([self.version_dropdown, self.delete_button]),
                    self.confirm_box, self.delete_message]),
            w.VBox([w.HBox([self.status_button, self.auto_refresh]), self.status_message,
                    self.status_html]),
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
            self._guard(self.refresh, self.message)
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

    def _guard(self, action: Callable[[], Any], where: w.HTML) -> Any:
        """Run a handler; show an error in ``where`` (next to its form) instead of
        raising it into ipywidgets."""
        try:
            self.last_error = None
            result = action()
        except (TFaaSClientError, ValueError, OSError, TypeError) as exc:
            self.last_error = str(exc)
            where.value = _error_html(str(exc))
            return None
        return result

    def _show_header(self) -> None:
        """The header line: how many models, and the one selected (follows the list)."""
        text = f"{len(self.models)} model(s)"
        if self.detail:
            d = self.detail
            text += (f"; selected: {d.get('name')} ({d.get('format')}, version "
                     f"{d.get('version')} of {len(d.get('versions') or [d.get('version')])})")
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
            self._show_header()
        self._guard(self.refresh_status, self.status_message)

    def select(self, name: str) -> None:
        """Select a model (as a click in the list does)."""
        if name not in self.models_select.options:
            raise ValueError(f"no model {name!r} (refresh?)")
        if self.models_select.value == name:
            self._load_detail(name)
        else:
            self.models_select.value = name

    def _on_select(self, change: dict[str, Any]) -> None:
        self._guard(lambda: self._load_detail(change["new"]), self.message)

    def _load_detail(self, name: str | None) -> None:
        """Show model ``name``: its description, a fresh try-it form, its versions."""
        self.cancel_delete()
        self.result_box.children = ()
        self.try_message.value = ""
        self.predictions = None
        self.bars = []
        if not name:
            self.detail = None
            self.model_info.value = "<i>no models yet: upload one</i>"
            self.version_dropdown.options = [("all versions", ALL_VERSIONS)]
            self._build_inputs([], None)
            self._show_header()
            return
        self.detail = detail = self.client.model(name)
        versions = detail.get("versions") or [detail.get("version")]
        self.version_dropdown.options = [("all versions", ALL_VERSIONS)] + [
            (f"version {v}", v) for v in versions
        ]
        self.version_dropdown.value = ALL_VERSIONS
        self.model_info.value = self._describe(detail)
        keys = detail.get("keys")
        self._build_inputs([str(k) for k in keys] if isinstance(keys, list) else [],
                           input_width(detail))
        self._show_header()

    @staticmethod
    def _describe(detail: dict[str, Any]) -> str:
        """The model as a table; its other params as a table inside it."""
        params = params_rows(detail)
        rows = [
            ("name", detail.get("name")),
            ("versions", ", ".join(map(str, detail.get("versions") or []))),
            ("version labels", version_labels_text(detail)),
            ("format", detail.get("format")),
            ("inputs", specs_text(detail.get("inputs"))),
            ("outputs", specs_text(detail.get("outputs"))),
            ("keys", ", ".join(map(str, detail.get("keys") or [])) or "-"),
            ("labels", ", ".join(map(str, detail.get("label_names") or [])) or "-"),
            ("params", html_table(params, row_headers=True) if params else "-"),
        ]
        return html_table(rows, row_headers=True)

    # -- try it --------------------------------------------------------------------------

    def _build_inputs(self, keys: list[str], width: int | None) -> None:
        """A fresh form for the selected model: one number field per key when params
        list keys (the key in full as label and tooltip), else one comma-separated box,
        emptied, saying how many values the model takes."""
        self.key_fields = {
            k: w.FloatText(value=0.0, description=k, tooltip=k,
                           style={"description_width": "initial"},
                           layout=w.Layout(width="45%"))
            for k in keys
        }
        self.values_text.value = ""
        self.values_text.placeholder = (f"{width} values separated by commas" if width
                                        else "values separated by commas")
        if keys:
            self.inputs_box.children = (w.Box(list(self.key_fields.values()),
                                              layout=w.Layout(flex_flow="row wrap")),)
        else:
            self.inputs_box.children = (self.values_text,)

    def input_row(self) -> tuple[list[float], list[str] | None]:
        """The row the form holds, and its keys (None when values go by position);
        checked against the number of values the selected model takes."""
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
        width = input_width(self.detail)
        if width is not None and len(values) != width:
            raise ValueError(f"{self.selected} expects {width} values per row, "
                             f"got {len(values)}")
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
        self.try_message.value = html.escape(f"{name}: {outputs.size} output(s)")
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
        the model file's name), with progress; select the new model. A failed upload
        empties the bar and turns it red."""
        self.upload_progress.value = 0.0
        self.upload_progress.bar_style = ""
        try:
            answer = self._upload(files)
        except Exception:
            self.upload_progress.value = 0.0
            self.upload_progress.bar_style = "danger"
            raise
        self.upload_progress.value = 1.0
        self.upload_progress.bar_style = "success"
        self.upload_message.value = html.escape(
            f"uploaded {answer.get('name')} version {answer.get('version')} "
            f"({answer.get('format')})" + (f"; {answer['note']}" if answer.get("note") else ""))
        self.file_upload.value = ()
        self.refresh()
        self.select(str(answer.get("name")))
        return answer

    def _upload(self, files: Sequence[tuple[str, bytes]] | None) -> dict[str, Any]:
        files = list(files) if files is not None else self.picked_files()
        if not files:
            raise ValueError("pick the model's files first")
        parts = classify_upload(files)
        name = self.name_text.value.strip() or _name_from_file(parts["model"][0])
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
                return self.client.upload(name, paths["model"], params=paths.get("params"),
                                          labels=paths.get("labels"), progress=progress)
            except TFaaSClientError as exc:
                raise TFaaSClientError(f"upload failed: {exc.message}", exc.status,
                                       exc.body) from None

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
        self.refresh()
        self.delete_message.value = html.escape(f"deleted {name}" + (
            f" version {version}" if version is not None else ""))
        return answer

    def cancel_delete(self) -> None:
        self.confirm_box.layout.display = "none"
        self.delete_message.value = ""

    # -- status ------------------------------------------------------------------------------

    def refresh_status(self) -> dict[str, Any]:
        """Reload the status panel: worker, loaded models, per-model requests and latency."""
        status = self.client.status()
        self.status = status
        self.status_message.value = ""
        lines = "".join(f"<div>{html.escape(line)}</div>" for line in status_headline(status))
        self.status_html.value = lines + html_table(status_rows(status), STATUS_COLUMNS)
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
                self._guard(self.refresh_status, self.status_message)

        threading.Thread(target=loop, name="tfaas-browser-refresh", daemon=True).start()

    def _stop_timer(self) -> None:
        if self._timer_stop is not None:
            self._timer_stop.set()
            self._timer_stop = None
