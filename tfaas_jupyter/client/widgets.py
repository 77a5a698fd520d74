"""A model browser for notebooks (``%tfaas browser``), made of ipywidgets only.

:class:`ModelBrowser` is the JupyterLab panel (labextension/) in a notebook: the same
parts in the same order (header, status strip, upload, models with their details,
try-it form), the same words (the shared ``vocabulary.json``, see
:mod:`.vocabulary`) and, for everything it shows as HTML, the panel's markup and CSS
classes (``jp-tfaas-*``, styled by labextension/style/base.css with JupyterLab's theme
variables), so in JupyterLab it follows the light and dark themes as the panel does.
Where the panel has a clickable element (a model's card, Upload…), the widget lays an
unseen ipywidgets control over the same markup (``_stack``): a click or a key press on
it runs in the kernel.
Unlike the panel, it needs a kernel, and it deletes one version as well as a whole
model.

Every control is a public attribute and every action a plain method called by the
handlers, so tests drive the browser from Python (set ``.value``, call a button's
``.click()``) without a web page. Handlers never raise: ipywidgets would only log the
exception where no user looks; the error is shown next to the form it belongs to (try
it, upload, delete, status; the model list's in the header) and kept in
:attr:`last_error`. Every value interpolated into HTML is escaped.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import ipywidgets as w
import numpy as np

from .api import TFaaSClient, TFaaSClientError
from .curl import curl_command
from .discovery import ServerInfo
from .present import (
    STATUS_STRIP,
    batching_views,
    format_ms,
    format_value,
    input_width,
    output_labels,
    params_rows,
    prediction_count,
    specs_text,
    status_strip,
    version_labels_text,
)
from .uploadfiles import ACCEPT, model_suffix, role_of, suffixes_text
from .urls import explorer_path, graph_path
from .vocabulary import word

__all__ = ["ModelBrowser", "classify_upload", "empty_models_html", "model_html",
           "result_html", "status_html"]

def classify_upload(files: Sequence[tuple[str, bytes]]) -> dict[str, tuple[str, bytes]]:
    """Sort picked files into ``model`` (.pb, .keras, .tar.gz, .zip, ...), ``params``
    (.json) and ``labels`` (.txt), by :mod:`.uploadfiles`. Exactly one model file is
    needed."""
    found: dict[str, tuple[str, bytes]] = {}
    for filename, content in files:
        base = Path(filename).name
        role = role_of(base)
        if role is None:
            raise ValueError(word("upload_not_model_file", name=base, **suffixes_text()))
        if role in found:
            raise ValueError(word("upload_two_files", role=role, first=found[role][0],
                                  second=base))
        found[role] = (base, content)
    if "model" not in found:
        raise ValueError(word("upload_no_model", **suffixes_text()))
    return found


def _name_from_file(filename: str) -> str:
    stem = Path(filename).name
    suffix = model_suffix(stem)
    if suffix:
        stem = stem[: -len(suffix)]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "model"


def _escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _text_html(key: str, css: str = "jp-tfaas-muted", **values: Any) -> str:
    """A word of the vocabulary (filled with escaped ``values``) in a span."""
    filled = word(key, **{k: str(v) for k, v in values.items()})
    return f'<span class="{css}">{_escape(filled)}</span>'


def _error_html(text: str) -> str:
    # JupyterLab's error colour, as the panel's notifications use
    return (f'<span class="jp-tfaas-error" style="color:var(--jp-error-color1)">'
            f"&#9888; {_escape(text)}</span>")


def header_html(url: str) -> str:
    """The panel's header: the title (the server's address in its tooltip)."""
    return (f'<header class="jp-tfaas-header"><h2 class="jp-tfaas-title" '
            f'title="{_escape(word("title_long"))}: {_escape(url)}">'
            f'{_escape(word("title"))}</h2></header>')


def heading_html(text: str) -> str:
    return f'<h3 class="jp-tfaas-heading">{_escape(text)}</h3>'


def status_html(view: dict[str, str] | None) -> str:
    """The panel's status strip: one cell per :data:`STATUS_STRIP` entry, labelled with
    its word; ``view`` from :func:`.present.status_strip` (None: not loaded yet)."""
    cells = []
    for key in STATUS_STRIP:
        value = view[key] if view else word("status_pending")
        cells.append(f'<div class="jp-tfaas-status-cell">'
                     f'<span class="jp-tfaas-muted">{_escape(word("status_" + key))}</span>'
                     f'<span data-status="{key}">{_escape(value)}</span></div>')
    return f'<div class="jp-tfaas-status" data-tfaas="status">{"".join(cells)}</div>'


def empty_models_html() -> str:
    """The model list with no model in it, as the panel says it."""
    return f'<li class="jp-tfaas-empty">{_escape(word("models_empty"))}</li>'


def model_html(detail: dict[str, Any], selected: bool = False) -> str:
    """One model as the panel lists it (an element carrying ``data-model``, marked
    ``jp-mod-selected`` when selected): name and badges, then its details (versions,
    version labels, format, inputs, outputs, keys, labels, params) in that order."""
    rows: list[str] = []

    def add(key: str, values: Sequence[str]) -> None:
        if values:
            shown = "".join(f'<div class="jp-tfaas-value">{_escape(v)}</div>' for v in values)
            rows.append(f"<dt>{_escape(word(key))}</dt><dd>{shown}</dd>")

    versions = detail.get("versions") or [detail.get("version")]
    labels = version_labels_text(detail)
    keys = detail.get("keys")
    add("field_versions", [", ".join(map(str, versions))])
    add("field_version_labels", [labels] if labels != "-" else [])
    add("field_format", [str(detail.get("format") or "?")])
    add("field_inputs", [specs_text([s]) for s in detail.get("inputs") or []])
    add("field_outputs", [specs_text([s]) for s in detail.get("outputs") or []])
    add("field_keys", [", ".join(map(str, keys))] if isinstance(keys, list) and keys else [])
    add("field_labels", [", ".join(map(str, detail.get("label_names") or []))]
        if detail.get("label_names") else [])
    add("field_params", [f"{key}: {value}" for key, value in params_rows(detail)])
    name = str(detail.get("name"))
    css = "jp-tfaas-model jp-mod-selected" if selected else "jp-tfaas-model"
    return (f'<li class="{css}" data-model="{_escape(name)}" role="option" '
            f'aria-selected="{str(selected).lower()}"><div class="jp-tfaas-model-head">'
            f'<span class="jp-tfaas-model-name">{_escape(name)}</span>'
            f'<span class="jp-tfaas-badge">v{_escape(detail.get("version", "?"))}</span>'
            f'<span class="jp-tfaas-badge">{_escape(detail.get("format") or "?")}</span>'
            f'</div><dl class="jp-tfaas-details">{"".join(rows)}</dl></li>')


#: The model's pages a link of the try-it row opens: its ``data-tfaas`` hook (also the
#: vocabulary key of its label, ``_tip`` added for its tooltip), and its path.
_MODEL_PAGES = {"graph": graph_path, "openapi": explorer_path}


def model_page_link_html(hook: str, tfaas_url: str, name: str) -> str:
    """A link to one of the model's pages (``graph``: the graph view, ``openapi``: the
    API explorer): a path under the server's base URL (the browser's own server, behind
    a hub's proxy too), opened in a new tab."""
    href = _MODEL_PAGES[hook](tfaas_url[: -len("tfaas/")], name)
    return (f'<a class="jp-tfaas-button" data-tfaas="{hook}" target="_blank" rel="noopener" '
            f'href="{_escape(href)}" title="{_escape(word(hook + "_tip"))}">'
            f'{_escape(word(hook))}</a>')


def result_html(rows: np.ndarray, labels: Sequence[str]) -> str:
    """The try-it result as the panel shows it: per row a table of label, value (six
    significant digits; the exact value in ``data-value``) and a bar for a
    probability (a value in [0, 1])."""
    tables = []
    rows = np.atleast_2d(rows)
    for i, row in enumerate(rows):
        caption = (f"<caption>{_escape(word('result_row', n=i + 1))}</caption>"
                   if len(rows) > 1 else "")
        cells = []
        for label, value in zip(labels, row.tolist()):
            bar = f' style="width:{value * 100:.1f}%"' if 0 <= value <= 1 else ""
            cells.append(
                f'<tr data-label="{_escape(label)}"><th>{_escape(label)}</th>'
                f'<td class="jp-tfaas-number" data-value="{_escape(repr(value))}">'
                f"{_escape(format_value(value))}</td>"
                f'<td class="jp-tfaas-bar-cell"><div class="jp-tfaas-bar"{bar}></div></td></tr>')
        tables.append(f'<table class="jp-tfaas-result-row" data-row="{i}">{caption}'
                      f'{"".join(cells)}</table>')
    return f'<div class="jp-tfaas-result" data-tfaas="result">{"".join(tables)}</div>'


def histogram_html(kind: str, title: str, buckets: list[tuple[str, str, int]]) -> str:
    """One histogram as the panel draws it (panel.ts, ``histogramTable``): a row per
    bucket anything fell in, its bar as long as its share of the largest."""
    most = max([1] + [n for _, _, n in buckets])
    total = sum(n for _, _, n in buckets)
    rows = "".join(
        f'<tr data-le="{_escape(le)}" '
        f'title="{_escape(word("batching_count_tip", count=n, total=total))}">'
        f"<th>{_escape(label)}</th>"
        f'<td class="jp-tfaas-bar-cell"><div class="jp-tfaas-bar" '
        f'style="width:{n / most * 100:.1f}%"></div></td>'
        f'<td class="jp-tfaas-number" data-count="{n}">{n}</td></tr>'
        for le, label, n in buckets)
    return (f'<table class="jp-tfaas-histogram" data-histogram="{kind}">'
            f"<caption>{_escape(title)}</caption>{rows}</table>")


def batching_html(status: dict[str, Any] | None, name: str | None) -> str:
    """The selected model's batching as the panel shows it: per version, the rows of
    each worker call and each request's queue wait as histograms ('' before a status)."""
    if not status or not name:
        return ""
    blocks = []
    for view in batching_views(status, name):
        mean = view["mean_wait_ms"]
        said = word("batching_version", version=view["version"] or "?",
                    requests=view["requests"], calls=view["calls"], rows=view["rows"])
        blocks.append(
            f'<div class="jp-tfaas-batching-version" data-version="{view["version"] or "?"}">'
            f'<div class="jp-tfaas-muted">{_escape(said)}</div>'
            + histogram_html("sizes", word("batching_sizes"), view["sizes"])
            + histogram_html("waits", word("batching_waits", mean=word("status_no_value")
                                           if mean is None else format_ms(mean)),
                             view["waits"])
            + "</div>")
    body = "".join(blocks) or _text_html("batching_empty")
    return (f'<section class="jp-tfaas-batching" data-tfaas="batching">'
            f'{heading_html(word("batching_heading", name=name))}{body}</section>')


def parse_values(text: str) -> list[list[float]]:
    """The rows in the values field, as the panel reads them: a JSON row (``[1, 2]``),
    a list of rows (``[[1, 2], [3, 4]]``) or bare numbers separated by commas."""
    trimmed = text.strip()
    if not trimmed:
        raise ValueError(word("values_missing"))
    try:
        parsed = json.loads(trimmed if trimmed.startswith("[") else f"[{trimmed}]")
    except ValueError:
        raise ValueError(word("values_not_json", text=trimmed[:40])) from None

    def is_row(row: Any) -> bool:
        return isinstance(row, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
            for v in row)

    if is_row(parsed) and parsed:
        return [[float(v) for v in parsed]]
    if isinstance(parsed, list) and parsed and all(is_row(r) and r for r in parsed):
        return [[float(v) for v in row] for row in parsed]
    raise ValueError(word("values_not_numbers"))


#: The version dropdown's value for "every version" (versions start at 1).
ALL_VERSIONS = 0

#: A "Copy curl" line maker: (model name, its description, the request or None for an
#: example row) -> shell line.
CurlMaker = Callable[[str, "dict[str, Any] | None", "dict[str, Any] | None"], str]


def _stack(face: w.Widget, hit: w.Widget) -> w.Box:
    """``hit`` (a control) laid unseen over ``face`` (what shows), as large as it:
    clicking what shows clicks the control (style/base.css, ``jp-tfaas-stack``)."""
    hit.add_class("jp-tfaas-hit")
    stack = w.Box([face, hit])
    stack.add_class("jp-tfaas-stack")
    return stack


def _button(key: str, tip: str, *extra_classes: str, **kwargs: Any) -> w.Button:
    """An ipywidgets button with the vocabulary's text and the panel's button class."""
    button = w.Button(description=word(key), tooltip=tip, **kwargs)
    for css in ("jp-tfaas-button", *extra_classes):
        button.add_class(css)
    return button


class ModelBrowser:
    """The model browser. ``client`` is a :class:`TFaaSClient` (``%tfaas browser``
    passes the discovered one, and ``curl``, which writes the Copy curl line for that
    server: the hub's public address under JupyterHub). Display it as the last
    expression of a cell."""

    def __init__(self, client: TFaaSClient, *, auto_refresh: bool = False,
                 interval: float = 5.0, load: bool = True,
                 curl: CurlMaker | None = None) -> None:
        self.client = client
        self.interval = interval
        self.models: list[dict[str, Any]] = []
        self.detail: dict[str, Any] | None = None
        self.status: dict[str, Any] | None = None
        self.predictions: np.ndarray | None = None
        self.last_error: str | None = None
        self._curl = curl
        self._last_sample: tuple[float, int] | None = None
        self._timer_stop: threading.Event | None = None
        self._lock = threading.RLock()

        # Header (the model list's errors go under it)
        self.refresh_button = _button("refresh", word("refresh_tip"), icon="refresh")
        self.auto_refresh = w.Checkbox(value=False, description=word("auto_refresh"),
                                       indent=False, layout=w.Layout(width="auto"))
        self.message = w.HTML()
        # Status strip
        self.status_html = w.HTML(status_html(None))
        self.status_message = w.HTML()
        # Upload: picking the files uploads them, as the panel's Upload… does. The
        # picker (a FileUpload, which writes its file count after its description) lies
        # unseen over a button reading as the panel's.
        self.name_text = w.Text(placeholder=word("upload_name"),
                                tooltip=word("upload_name_label"),
                                layout=w.Layout(flex="1 1 auto", width="auto"))
        self.file_upload = w.FileUpload(accept=ACCEPT, multiple=True,
                                        description=word("upload"),
                                        tooltip=word("upload_tip"))
        self.upload_face = _button("upload", word("upload_tip"), tabbable=False)
        upload_control = _stack(self.upload_face, self.file_upload)
        self.upload_progress = w.FloatProgress(value=0.0, min=0.0, max=1.0,
                                               layout=w.Layout(width="100%"))
        self.upload_message = w.HTML()
        # Models: the panel's list, one card per model (see _model_card), then delete
        self.model_cards: dict[str, w.HTML] = {}
        self.model_picks: dict[str, w.Button] = {}
        self._model_slots: dict[str, w.Box] = {}
        self._selected: str | None = None
        self._no_models = w.HTML(empty_models_html())
        self.models_box = w.VBox([self._no_models])
        self.models_box.add_class("jp-tfaas-models")
        self.version_dropdown = w.Dropdown(options=[(word("delete_all_versions"),
                                                     ALL_VERSIONS)],
                                           layout=w.Layout(width="auto"))
        self.delete_button = _button("delete", word("delete_title"), "jp-mod-warn",
                                     icon="trash")
        self.confirm_button = _button("delete", word("delete_title"), "jp-mod-warn",
                                      button_style="danger")
        self.cancel_button = _button("cancel", word("cancel"))
        self.confirm_box = w.HBox([self.confirm_button, self.cancel_button],
                                  layout=w.Layout(display="none"))
        self.delete_message = w.HTML()
        # Try it
        self.try_title = w.HTML(heading_html(word("try_none")))
        self.values_text = w.Text(placeholder=word("values_hint"),
                                  layout=w.Layout(width="100%"))
        self.values_text.add_class("jp-tfaas-values")
        self.key_fields: dict[str, w.FloatText] = {}
        self.inputs_box = w.VBox([self.values_text])
        self.predict_button = _button("predict", word("predict_tip"), "jp-mod-accept",
                                      button_style="primary")
        self.curl_button = _button("copy_curl", word("copy_curl_tip"))
        self.try_message = w.HTML()
        self.result_html = w.HTML()
        self.curl_html = w.HTML()
        self.graph_html = w.HTML()
        self.batching_html = w.HTML()

        self.refresh_button.on_click(lambda _: self._guard(self.refresh, self.message))
        self.predict_button.on_click(lambda _: self._guard(self.predict, self.try_message))
        self.curl_button.on_click(lambda _: self._guard(self.copy_curl, self.try_message))
        self.file_upload.observe(self._on_pick, names="value")
        self.delete_button.on_click(lambda _: self._guard(self.ask_delete, self.delete_message))
        self.confirm_button.on_click(
            lambda _: self._guard(self.confirm_delete, self.delete_message))
        self.cancel_button.on_click(lambda _: self._guard(self.cancel_delete, self.delete_message))
        self.auto_refresh.observe(self._on_auto_refresh, names="value")

        def row(*children: w.Widget) -> w.HBox:
            box = w.HBox(list(children), layout=w.Layout(align_items="center"))
            box.add_class("jp-tfaas-row")
            return box

        drop = w.VBox([
            w.HTML(_text_html("upload_hint")),
            row(self.name_text, upload_control),
            self.upload_progress,
            self.upload_message,
        ])
        drop.add_class("jp-tfaas-drop")
        self.tryit = w.VBox([
            self.try_title,
            w.HTML(f'<label class="jp-tfaas-muted">'
                   f'{_escape(word("values"))} ({_escape(word("values_hint"))})</label>'),
            self.inputs_box,
            row(self.predict_button, self.curl_button, self.graph_html),
            self.try_message,
            self.result_html,
            self.curl_html,
            self.batching_html,
        ])
        self.tryit.add_class("jp-tfaas-tryit")
        # the panel's order: header, status, upload, models, try it
        self.widget = w.VBox([
            row(w.HTML(header_html(client.url), layout=w.Layout(flex="1 1 auto")),
                self.auto_refresh, self.refresh_button),
            self.message,
            self.status_html,
            self.status_message,
            drop,
            w.HTML(heading_html(word("models"))),
            self.models_box,
            row(self.version_dropdown, self.delete_button, self.confirm_box),
            self.delete_message,
            self.tryit,
        ])
        self.widget.add_class("jp-tfaas-panel")
        self.widget.add_class("jp-tfaas-widget")
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

    @property
    def selected(self) -> str | None:
        """The selected model's name."""
        return self._selected

    @property
    def model_names(self) -> tuple[str, ...]:
        """The models listed, in the list's order (by name, as the panel's)."""
        return tuple(self.model_cards)

    # -- models ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the model list (keeping the selection when it still exists) and status."""
        with self._lock:
            self.models = self.client.models()
            self.message.value = ""
            listed = {str(m.get("name")): m for m in self.models}
            names = sorted(listed)
            current = self._selected if self._selected in listed else None
            self._selected = current or (names[0] if names else None)
            self._list_models(names)
            self._load_detail(self._selected)
            self._show_cards()
        self._guard(self.refresh_status, self.status_message)

    def select(self, name: str) -> None:
        """Select a model (as a click on its card does)."""
        if name not in self.model_cards:
            raise ValueError(f"no model {name!r} (refresh?)")
        with self._lock:
            self._selected = name
            self._load_detail(name)
            self._show_cards()

    def _list_models(self, names: list[str]) -> None:
        """One card per model in ``names``: new ones made, gone ones closed."""
        for gone in [name for name in self.model_cards if name not in names]:
            self.model_cards.pop(gone)
            self.model_picks.pop(gone)
            self._model_slots.pop(gone).close()
        cards = {}
        for name in names:
            if name not in self._model_slots:
                self._model_card(name)
            cards[name] = self.model_cards[name]
        self.model_cards = cards
        self.models_box.children = [self._model_slots[name] for name in names] or \
            [self._no_models]

    def _model_card(self, name: str) -> None:
        """The card of model ``name``: its panel markup (an HTML widget), under a button
        as large as it, unseen, which selects the model when clicked (or pressed, from
        the keyboard): ipywidgets gives HTML no events."""
        card = w.HTML()
        pick = w.Button(description=name, tooltip=word("select_model", name=name))
        pick.on_click(lambda _: self._guard(lambda: self.select(name), self.message))
        self.model_cards[name] = card
        self.model_picks[name] = pick
        self._model_slots[name] = _stack(card, pick)

    def _show_cards(self) -> None:
        """Each card from the listing (the selected one from its full description, with
        its version labels), the selected one marked."""
        listed = {str(m.get("name")): m for m in self.models}
        for name, card in self.model_cards.items():
            doc = self.detail if self.detail and name == self._selected else listed.get(name)
            card.value = model_html(doc or {"name": name}, selected=name == self._selected)

    def _load_detail(self, name: str | None) -> None:
        """Show model ``name``: its full description, a fresh try-it form, its versions."""
        self.detail = None
        self.cancel_delete()
        self.result_html.value = ""
        self.curl_html.value = ""
        self.try_message.value = ""
        self.predictions = None
        all_versions = [(word("delete_all_versions"), ALL_VERSIONS)]
        if not name:
            self.detail = None
            self.try_title.value = heading_html(word("try_none"))
            self.tryit.layout.display = "none"
            self.version_dropdown.options = all_versions
            self._build_inputs([], None)
            return
        self.detail = detail = self.client.model(name)
        versions = detail.get("versions") or [detail.get("version")]
        self.version_dropdown.options = all_versions + [
            (word("delete_version", version=v), v) for v in versions
        ]
        self.version_dropdown.value = ALL_VERSIONS
        self.try_title.value = heading_html(
            word("try_model", name=name, version=detail.get("version", "?")))
        self.tryit.layout.display = "flex"
        self.graph_html.value = "".join(model_page_link_html(hook, self.client.url, name)
                                        for hook in _MODEL_PAGES)
        self.batching_html.value = batching_html(self.status, name)
        keys = detail.get("keys")
        self._build_inputs([str(k) for k in keys] if isinstance(keys, list) else [],
                           input_width(detail))

    # -- try it --------------------------------------------------------------------------

    def _build_inputs(self, keys: list[str], width: int | None) -> None:
        """A fresh form for the selected model: one number field per key when params
        list keys (the key in full as label and tooltip), else the values field with
        a row of zeros of the model's width, as the panel starts it."""
        self.key_fields = {
            k: w.FloatText(value=0.0, description=k, tooltip=k,
                           style={"description_width": "initial"},
                           layout=w.Layout(width="45%"))
            for k in keys
        }
        self.values_text.value = json.dumps([0] * width) if width else ""
        if keys:
            self.inputs_box.children = (w.Box(list(self.key_fields.values()),
                                              layout=w.Layout(flex_flow="row wrap")),)
        else:
            self.inputs_box.children = (self.values_text,)

    def input_rows(self) -> tuple[list[list[float]], list[str] | None]:
        """The rows the form holds, and their keys (None when values go by position);
        each checked against the number of values the selected model takes."""
        if self.key_fields:
            keys = list(self.key_fields)
            return [[float(self.key_fields[k].value) for k in keys]], keys
        rows = parse_values(self.values_text.value)
        width = input_width(self.detail)
        for i, row in enumerate(rows):
            if width is not None and len(row) != width:
                raise ValueError(word("values_width", name=self.selected, width=width,
                                      row=i + 1, count=len(row)))
        return rows, None

    def _request(self) -> dict[str, Any]:
        """The /json request the form makes (as the panel's ``predictRequest``)."""
        name = self.selected
        if not name:
            raise ValueError(word("select_first"))
        rows, keys = self.input_rows()
        request: dict[str, Any] = {"model": name,
                                   "values": rows[0] if len(rows) == 1 else rows}
        if keys:
            request["keys"] = keys
        return request

    def predict(self) -> np.ndarray:
        """Send the form's rows to the selected model; show each output with its label
        (one table per row). One row gives a flat array, several rows one per row."""
        request = self._request()
        name, values = request["model"], request["values"]
        outputs = np.asarray(self.client.predict(name, values, keys=request.get("keys")))
        rows = np.atleast_2d(values).shape[0]
        outputs = outputs.reshape(rows, -1)
        self.predictions = outputs[0] if rows == 1 else outputs
        self.result_html.value = result_html(
            outputs, output_labels(self.detail, outputs.shape[1]))
        self.try_message.value = ""
        return self.predictions

    def copy_curl(self) -> str:
        """The curl line for the form's request (an example row when the form does not
        parse) on this server, shown under the form for copying."""
        name = self.selected
        if not name:
            raise ValueError(word("select_first"))
        try:
            request: dict[str, Any] | None = self._request()
        except ValueError:
            request = None
        if self._curl is not None:
            line = self._curl(name, self.detail, request)
        else:
            root = self.client.url[: -len("tfaas/")]
            line = curl_command(ServerInfo(root, source="connect"), name, self.detail,
                                request=request)
        self.curl_html.value = (f'<code class="jp-tfaas-curl" data-tfaas="curl-text">'
                                f"{_escape(line)}</code>")
        return line

    # -- upload ----------------------------------------------------------------------------

    def picked_files(self) -> list[tuple[str, bytes]]:
        """The files in the FileUpload widget as (name, content)."""
        files = []
        for item in self.file_upload.value or ():
            content = item["content"]
            files.append((str(item["name"]), bytes(content)))
        return files

    def _on_pick(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._guard(self.upload, self.upload_message)

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
        finally:
            self.file_upload.value = ()
        self.upload_progress.value = 1.0
        self.upload_progress.bar_style = "success"
        said = word("uploaded", name=answer.get("name"), version=answer.get("version"))
        if answer.get("note"):
            said += f"; {answer['note']}"
        self.upload_message.value = f'<span class="jp-tfaas-muted">{_escape(said)}</span>'
        self.name_text.value = ""
        self.refresh()
        self.select(str(answer.get("name")))
        return answer

    def _upload(self, files: Sequence[tuple[str, bytes]] | None) -> dict[str, Any]:
        files = list(files) if files is not None else self.picked_files()
        if not files:
            raise ValueError(word("upload_nothing"))
        parts = classify_upload(files)
        name = self.name_text.value.strip() or _name_from_file(parts["model"][0])
        self.upload_message.value = _text_html("uploading", name=name)

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
                raise TFaaSClientError(f"{word('upload_failed')}: {exc.message}", exc.status,
                                       exc.body) from None

    # -- delete ------------------------------------------------------------------------------

    def _delete_target(self) -> str:
        name = self.selected
        version = self.version_dropdown.value or None
        return f"{name} {word('delete_version', version=version)}" if version is not None \
            else f"{name} ({word('delete_all_versions')})"

    def ask_delete(self) -> None:
        """First step of a delete: show the question and Delete/Cancel."""
        if not self.selected:
            raise ValueError(word("select_first"))
        self.delete_message.value = _text_html("delete_ask", css="jp-tfaas-ask",
                                               what=self._delete_target())
        self.confirm_box.layout.display = "flex"

    @property
    def confirming(self) -> bool:
        """Whether Delete/Cancel is shown."""
        return bool(self.confirm_box.layout.display != "none")

    def confirm_delete(self) -> dict[str, Any] | None:
        """Second step: delete for real."""
        if not self.confirming:
            return None
        name = self.selected
        version = self.version_dropdown.value or None
        what = self._delete_target()
        self.confirm_box.layout.display = "none"
        if not name:
            return None
        answer = self.client.delete(name, version)
        self.refresh()
        self.delete_message.value = _text_html("deleted", what=what)
        return answer

    def cancel_delete(self) -> None:
        self.confirm_box.layout.display = "none"
        self.delete_message.value = ""

    # -- status ------------------------------------------------------------------------------

    def refresh_status(self) -> dict[str, Any]:
        """Reload the status strip: worker, TensorFlow, loaded models, request rate since
        the last reload and the worst p99 latency."""
        status = self.client.status()
        sample = (time.monotonic(), prediction_count(status))
        rate = None
        if self._last_sample is not None and sample[0] > self._last_sample[0]:
            served = max(0, sample[1] - self._last_sample[1])
            rate = served / (sample[0] - self._last_sample[0])
        self._last_sample = sample
        self.status = status
        self.status_message.value = ""
        self.status_html.value = status_html(status_strip(status, rate))
        self.batching_html.value = batching_html(status, self._selected)
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
