"""One vocabulary for the notebook widget and the JupyterLab panel.

``tfaas_jupyter/client/vocabulary.json`` is the only list of their words: the widget
reads it (``client/vocabulary.py``), the panel's build bundles it
(``labextension/src/words.ts``; its jest tests check the TypeScript side). Here: the
widget shows every word its code names, and the built panel carries the very file.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT

pytest.importorskip("ipywidgets")

import ipywidgets as w

from tfaas_jupyter.client import present, uploadfiles, widgets
from tfaas_jupyter.client.api import TFaaSClientError
from tfaas_jupyter.client.vocabulary import WORDS, word

SHARED = ROOT / "tfaas_jupyter" / "client" / "vocabulary.json"
UPLOAD_FILES = ROOT / "tfaas_jupyter" / "client" / "upload_files.json"
BUILT = ROOT / "labextension" / "dist" / "static"


def words_named_in(path: Path) -> set[str]:
    """The vocabulary keys a module names literally: ``word("KEY"``, ``_button("KEY"``,
    ``_text_html("KEY"`` and the model details' ``add("KEY"``."""
    return set(re.findall(r"""\b(?:word|_button|_text_html|add)\(\s*["'](\w+)["']\s*[,)]""",
                          path.read_text()))


#: What the two must say alike: section names, field labels, buttons, status words,
#: the empty list, the try-it title, value and upload errors.
COMMON = {
    "title", "refresh", "models", "models_empty", "field_versions", "field_version_labels",
    "field_format", "field_inputs", "field_outputs", "field_keys", "field_labels",
    "field_params", "upload", "upload_hint", "upload_name", "uploading", "uploaded",
    "upload_failed", "upload_not_model_file", "upload_two_files", "upload_no_model",
    "delete", "cancel", "delete_ask", "deleted", "try_none", "try_model", "values",
    "values_hint", "values_missing", "values_not_json", "values_not_numbers",
    "values_width", "predict", "copy_curl", "copy_curl_tip", "result_row", "select_first",
    "status_tensorflow_unknown", "status_none", "status_no_value", "status_rate_value",
    "status_p99_value", "worker_problem",
}


def panel_words() -> set[str]:
    """The keys the panel's TypeScript names (``word('KEY'``)."""
    return {key for path in (ROOT / "labextension" / "src").glob("*.ts")
            for key in re.findall(r"word\('(\w+)'", path.read_text())}


def fragments(template: str) -> list[str]:
    """The fixed parts of a word with placeholders: what must show whatever fills it."""
    return [part.strip() for part in re.split(r"\{\w+\}", template) if part.strip()]


def shown_text(widget: Any) -> str:
    """Everything a widget tree shows a person: labels, tooltips, placeholders, option
    labels, and the HTML's text and attribute values (titles), unescaped."""
    found: list[str] = []
    for name in ("description", "tooltip", "placeholder"):
        value = getattr(widget, name, None)
        if isinstance(value, str):
            found.append(value)
    if isinstance(widget, w.HTML):
        found.append(html.unescape(widget.value))
    if isinstance(widget, (w.Select, w.Dropdown)):
        found += [str(label) for label in widget._options_labels]
    for child in getattr(widget, "children", ()) or ():
        found.append(shown_text(child))
    return "\n".join(found)


class FakeServer:
    """Answers as the TFaaS API does, for the widget's every state; records what the
    widget shows while an upload runs."""

    url = "http://127.0.0.1:1/tfaas/"

    def __init__(self) -> None:
        self.store: dict[str, dict[str, Any]] = {}
        self.worker: dict[str, Any] = {"state": "running"}
        self.requests = 0
        self.browser: widgets.ModelBrowser | None = None
        self.seen: list[str] = []

    def models(self) -> list[dict[str, Any]]:
        return [self.store[name] for name in sorted(self.store)]

    def model(self, name: str) -> dict[str, Any]:
        return self.store[name]

    def status(self) -> dict[str, Any]:
        loaded = sorted(self.store)
        return {"worker": self.worker, "tensorflow": "2.21.0" if loaded else None,
                "models_loaded": loaded,
                "models": {n: {"requests": self.requests, "p99_latency_ms": 2.5,
                                "cold_starts": 1, "cold_start_mean_ms": 6700.0}
                           for n in loaded},
                # what the batcher did (the status's ``batching``)
                "batching": {"models": {f"{n}/1": {
                    "model": n, "version": 1, "requests": 3, "worker_calls": 2, "rows": 5,
                    "queue_wait_mean_ms": 0.5,
                    "batch_size_histogram": {"buckets": [["1.0", 1], ["4.0", 2],
                                                         ["+Inf", 2]]},
                    "queue_wait_seconds_histogram": {"buckets": [["0.0", 2], ["1.0", 2],
                                                                 ["+Inf", 3]]}}
                    for n in loaded if self.requests}},  # none before a prediction
                # a worker with a GPU, once it runs (the status's ``devices``)
                "devices": {"devices": [
                    {"name": "/physical_device:CPU:0"},
                    {"name": "/physical_device:GPU:0", "memory_in_use": 3 << 20,
                     "memory_peak": 5 << 20}]} if loaded else None}

    def predict(self, name: str, values: Any, keys: Any = None) -> list[Any]:
        self.requests += 1
        rows = values if isinstance(values[0], list) else [values]
        answer = [[0.25, 0.75] for _ in rows]
        return answer[0] if len(rows) == 1 else answer

    def upload(self, name: str, model: str, params: Any = None, labels: Any = None,
               progress: Any = None) -> dict[str, Any]:
        assert self.browser is not None
        self.seen.append(shown_text(self.browser.widget))
        if name == "broken":
            raise TFaaSClientError("unreadable model", 400)
        doc = {"name": name, "version": 1, "versions": [1, 2], "format": "keras",
               "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 2]}],
               "outputs": [{"name": "y", "dtype": "float32", "shape": [None, 2]}],
               "label_names": ["neg", "pos"], "version_labels": {"stable": 1},
               "threshold": 0.5}
        if name == "keyed":
            doc["keys"] = ["a", "b"]
        self.store[name] = doc
        return {"name": name, "version": 1, "format": "keras"}

    def delete(self, name: str, version: int | None = None) -> dict[str, Any]:
        self.store.pop(name)
        return {"name": name}


def test_the_widget_shows_every_word_it_names() -> None:
    """Drive the widget through each of its states and errors; every word its code
    names (and every worker state and status label) shows somewhere."""
    server = FakeServer()
    browser = widgets.ModelBrowser(server)  # type: ignore[arg-type]
    server.browser = browser
    seen = server.seen

    def look() -> None:
        seen.append(shown_text(browser.widget))

    look()  # no models yet
    browser.predict_button.click()  # nothing selected
    look()
    for files in ([("a.exe", b"")], [("a.pb", b""), ("b.pb", b"")], [("p.json", b"{}")], []):
        browser._guard(lambda files=files: browser.upload(files), browser.upload_message)
        look()
    browser.name_text.value = "broken"
    browser._guard(lambda: browser.upload([("m.keras", b"k")]), browser.upload_message)
    look()
    browser.name_text.value = ""
    browser.upload([("keyed.keras", b"k")])
    look()
    browser.predict_button.click()
    look()
    browser.upload([("plain.keras", b"k")])
    look()
    for values in ("", "1, x", "[[1, 2], 3]", "1, 2, 3", "[[1, 2], [3, 4]]"):
        browser.values_text.value = values
        browser.predict_button.click()
        look()
    browser.curl_button.click()
    look()
    for state in ({"state": "starting"}, {"state": "stopped"}, {},
                  {"state": "failed", "last_error": "no TensorFlow"}):
        server.worker = state
        browser.refresh_button.click()
        look()
    browser.auto_refresh.value = True
    browser.auto_refresh.value = False
    browser.version_dropdown.value = 2
    browser.delete_button.click()
    look()
    browser.confirm_button.click()
    look()
    shown = "\n".join(seen)

    named = words_named_in(Path(widgets.__file__)) | words_named_in(Path(present.__file__))
    named |= {f"status_{key}" for key in present.STATUS_STRIP}
    named |= {key for key in WORDS if key.startswith("worker_")}
    assert COMMON <= named, sorted(COMMON - named)
    assert COMMON <= panel_words(), sorted(COMMON - panel_words())
    missing = {key: WORDS[key] for key in named
               if not all(part in shown for part in fragments(WORDS[key]))}
    assert not missing, missing
    assert browser.last_error is None, browser.last_error


def test_words_fill_their_placeholders() -> None:
    assert word("values_width", name="m", width=4, row=1, count=2) == \
        "m takes 4 values per row; row 1 has 2"
    assert present.worker_text("running") == WORDS["worker_running"]
    assert present.worker_text("elsewhere") == "elsewhere"
    assert dict(WORDS) == json.loads(SHARED.read_text(encoding="utf-8"))


def test_the_widget_takes_the_shared_upload_file_endings() -> None:
    """upload_files.json is the one list of what an upload takes: the widget's picker
    accepts exactly its endings, sorts files by them and names them in its errors."""
    shipped = json.loads(UPLOAD_FILES.read_text(encoding="utf-8"))
    assert {role: list(endings) for role, endings in uploadfiles.SUFFIXES.items()} == shipped
    every = shipped["model"] + shipped["params"] + shipped["labels"]
    assert ".tar.gz" in every and ".json" in every
    browser = widgets.ModelBrowser(FakeServer(), load=False)  # type: ignore[arg-type]
    assert browser.file_upload.accept.split(",") == every
    for ending in shipped["model"]:
        assert set(widgets.classify_upload([(f"net{ending.upper()}", b"")])) == {"model"}
    for role in ("params", "labels"):
        for ending in shipped[role]:
            assert set(widgets.classify_upload([("net.pb", b""), (f"x{ending}", b"")])) == \
                {"model", role}
    with pytest.raises(ValueError) as refused:
        widgets.classify_upload([("a.exe", b"")])
    assert str(refused.value) == (f"a.exe: not a model ({', '.join(shipped['model'])}), "
                                  f"params (.json) or labels (.txt) file")
    panel = (ROOT / "labextension" / "src" / "upload.ts").read_text()
    assert "from '../../tfaas_jupyter/client/upload_files.json'" in panel
    assert not re.search(r"""['"]\.(keras|tgz|h5)['"]""", panel), "endings written in upload.ts"


def test_the_built_panel_carries_the_shared_words() -> None:
    """The labextension's bundle (what the wheel ships) holds vocabulary.json as it is
    now: the panel imports that file, not a copy of its own."""
    bundles = sorted(BUILT.glob("*.js"))
    assert bundles, f"{BUILT} is missing: pip install -e . builds it"
    # webpack inlines the JSON as JSON.parse('...'): quotes escaped for that string
    text = "\n".join(path.read_text(encoding="utf-8") for path in bundles).replace("\\'", "'")

    def forms(value: str) -> set[str]:
        """The value as JSON, and as webpack writes it (non-ASCII as \\xNN or \\uNNNN)."""
        plain = json.dumps(value, ensure_ascii=False)
        return {plain, "".join(c if ord(c) < 128 else
                               (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
                               for c in plain)}

    missing = [key for key, value in WORDS.items()
               if not any(f"{json.dumps(key)}:{form}" in text for form in forms(value))]
    assert not missing, missing
    panel = (ROOT / "labextension" / "src" / "words.ts").read_text()
    assert "from '../../tfaas_jupyter/client/vocabulary.json'" in panel
    # and the upload file endings, as upload_files.json holds them
    endings = json.loads(UPLOAD_FILES.read_text(encoding="utf-8"))
    assert json.dumps(endings, separators=(",", ":")) in text
