"""The model browser, driven from Python against a real server (pytest-jupyter).

Widgets are changed as a user would (``.value``, ``.click()``), then the server's
state is checked through the client. Every blocking call runs in a thread: the
server runs in this process's event loop, which a blocking call would deadlock.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tfmodels
from helpers import in_thread

from tfaas_jupyter.client import TFaaSClient
from tfaas_jupyter.client.present import STATUS_STRIP
from tfaas_jupyter.client.widgets import (
    ModelBrowser,
    classify_upload,
    model_html,
    result_html,
    status_html,
)


def picked(*paths: Path, names: list[str] | None = None) -> tuple[dict[str, Any], ...]:
    """What FileUpload.value holds after the user picked these files."""
    items = []
    for i, path in enumerate(paths):
        data = path.read_bytes()
        items.append({"name": names[i] if names else path.name, "type": "",
                      "size": len(data), "content": memoryview(data),
                      "last_modified": datetime.now(timezone.utc)})
    return tuple(items)


async def pick(browser: ModelBrowser, *paths: Path, names: list[str] | None = None) -> None:
    """Pick files in the browser's Upload… button, which uploads them (in a thread:
    the upload blocks)."""
    await in_thread(setattr, browser.file_upload, "value", picked(*paths, names=names))


def shown_result(browser: ModelBrowser, row: int = 0) -> list[tuple[str, float, str]]:
    """The try-it result as shown: (label, exact value, text) per output of ``row``."""
    table = re.search(rf'<table class="jp-tfaas-result-row" data-row="{row}">(.*?)</table>',
                      browser.result_html.value)
    assert table, browser.result_html.value
    return [(html.unescape(label), float(value), text) for label, value, text in re.findall(
        r'<tr data-label="([^"]*)">.*?data-value="([^"]*)">([^<]*)</td>', table.group(1))]


async def test_upload_try_delete_graphdef_with_keys(client: TFaaSClient, seed_dir: Path,
                                                   tmp_path: Path) -> None:
    browser: ModelBrowser = await in_thread(ModelBrowser, client)
    assert browser.model_names == () and browser.last_error is None
    assert browser.models_box.children[0].value == \
        '<li class="jp-tfaas-empty">No models yet: upload one above.</li>'
    assert browser.tryit.layout.display == "none"

    doc = json.loads((seed_dir / "input.json").read_text())
    keys, values = doc["keys"], doc["values"]
    params = json.loads((seed_dir / "params.json").read_text())
    params["keys"] = keys  # one input field per key in the try-it form
    (tmp_path / "params.json").write_text(json.dumps(params))

    browser.name_text.value = "vk"
    await pick(browser, seed_dir / "model.pb", tmp_path / "params.json",
               seed_dir / "labels.txt")
    assert browser.last_error is None, browser.last_error
    assert browser.upload_progress.value == 1.0
    assert "vk version 1 uploaded" in browser.upload_message.value
    assert browser.file_upload.value == ()
    assert [m["name"] for m in await in_thread(client.models)] == ["vk"]
    assert browser.selected == "vk"
    assert browser.model_cards["vk"].value.startswith(
        '<li class="jp-tfaas-model jp-mod-selected" data-model="vk" role="option" '
        'aria-selected="true">')
    assert "<dt>Labels</dt><dd><div class=\"jp-tfaas-value\">signal</div>" in \
        browser.model_cards["vk"].value
    assert "Try vk (version 1)" in browser.try_title.value

    # Try it: one field per key.
    assert list(browser.key_fields) == keys
    for key, value in zip(keys, values):
        browser.key_fields[key].value = value
    await in_thread(browser.predict_button.click)
    assert browser.last_error is None, browser.last_error
    expected = await in_thread(client.predict, "vk", dict(zip(keys, values)))
    np.testing.assert_allclose(browser.predictions, expected, rtol=1e-6)
    ((label, value, text),) = shown_result(browser)
    assert label == "signal" and value == pytest.approx(expected[0], rel=1e-12)
    assert float(text) == pytest.approx(expected[0], rel=1e-5) and len(text) >= 6, text
    assert f'style="width:{expected[0] * 100:.1f}%"' in browser.result_html.value

    # A second version, then delete version 1 only (two steps).
    browser.name_text.value = "vk"
    await pick(browser, seed_dir / "model.pb", tmp_path / "params.json")
    assert (await in_thread(client.model, "vk"))["versions"] == [1, 2]
    browser.version_dropdown.value = 1
    await in_thread(browser.delete_button.click)
    assert browser.confirming
    assert "Delete vk version 1 from the server?" in browser.delete_message.value
    await in_thread(browser.cancel_button.click)
    assert not browser.confirming
    assert (await in_thread(client.model, "vk"))["versions"] == [1, 2]
    browser.version_dropdown.value = 1
    await in_thread(browser.delete_button.click)
    await in_thread(browser.confirm_button.click)
    assert browser.last_error is None, browser.last_error
    assert (await in_thread(client.model, "vk"))["versions"] == [2]
    assert "vk version 1 deleted" in browser.delete_message.value

    # Delete all: the model is gone from the server and the list.
    await in_thread(browser.delete_button.click)
    await in_thread(browser.confirm_button.click)
    assert await in_thread(client.models) == []
    assert browser.model_names == () and browser.model_cards == {}
    assert browser.models_box.children == (browser._no_models,)
    browser.close()


async def test_keras_file_values_box_status_and_errors(client: TFaaSClient,
                                                       tmp_path: Path) -> None:
    built = await in_thread(tfmodels.make_keras_file, tmp_path / "k")
    browser: ModelBrowser = await in_thread(ModelBrowser, client)
    # No name typed: the file's name is the model's.
    await pick(browser, built.path)
    assert browser.last_error is None, browser.last_error
    assert browser.selected == "tiny"
    assert browser.key_fields == {}
    # the form starts with a row of zeros of the model's width, as the panel's
    assert json.loads(browser.values_text.value) == [0] * tfmodels.N_IN

    row = np.linspace(-1, 1, tfmodels.N_IN).astype(np.float32)
    browser.values_text.value = ", ".join(f"{v:.6f}" for v in row)
    await in_thread(browser.predict_button.click)
    assert browser.last_error is None, browser.last_error
    expected = built.reference([row[None, :]])[0][0]
    np.testing.assert_allclose(browser.predictions, expected, rtol=1e-4, atol=1e-6)
    shown = shown_result(browser)
    assert [s[0] for s in shown] == ["output_0", "output_1", "output_2"]
    assert [s[1] for s in shown] == pytest.approx(expected.tolist(), rel=1e-4, abs=1e-6)
    # two rows as JSON, as the panel takes them: one table each
    rows = np.stack([row, -row])
    browser.values_text.value = json.dumps(rows.tolist())
    await in_thread(browser.predict_button.click)
    assert browser.last_error is None, browser.last_error
    expected2 = built.reference([rows])[0]
    np.testing.assert_allclose(browser.predictions, expected2, rtol=1e-4, atol=1e-6)
    assert [s[1] for s in shown_result(browser, 1)] == pytest.approx(
        expected2[1].tolist(), rel=1e-4, abs=1e-6)
    assert "<caption>row 2</caption>" in browser.result_html.value

    # A wrong number of values is an error message, not an exception.
    browser.values_text.value = "1, 2"
    await in_thread(browser.predict_button.click)
    assert browser.last_error == "tiny takes 6 values per row; row 1 has 2"
    assert "takes 6 values" in browser.try_message.value  # next to the form
    assert "takes" not in browser.message.value
    browser.values_text.value = "1, x"
    await in_thread(browser.predict_button.click)
    assert "not JSON: 1, x" in (browser.last_error or "")

    # The status strip counts the requests: the loaded model, a rate since the last look.
    await in_thread(browser.refresh_button.click)
    assert browser.status and browser.status["models"]["tiny"]["requests"] >= 3
    strip = browser.status_html.value
    assert '<span data-status="loaded">tiny v1</span>' in strip, strip
    assert re.search(r'<span data-status="rate">[0-9.]+ req/s</span>', strip), strip
    assert re.search(r'<span data-status="p99">≤ [0-9.]+ m?s</span>', strip), strip
    assert '<span data-status="worker">running</span>' in strip, strip

    # Auto-refresh updates the panel by itself.
    browser.interval = 0.2
    browser.status = None
    browser.auto_refresh.value = True
    deadline = time.monotonic() + 60
    while browser.status is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    browser.auto_refresh.value = False
    assert browser.status is not None

    # Upload errors are shown.
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a model")
    browser.name_text.value = "bad"
    await pick(browser, bad)
    assert browser.last_error and "upload failed" in browser.upload_message.value
    assert "unreadable model" in browser.upload_message.value
    assert "upload failed" not in browser.message.value
    # the bytes were all sent, but a refused upload does not show a full bar
    assert browser.upload_progress.value == 0.0
    assert browser.upload_progress.bar_style == "danger"
    assert [m["name"] for m in await in_thread(client.models)] == ["tiny"]
    browser.close()


def _tree(widget: Any) -> list[Any]:
    """A widget and every widget inside it."""
    found = [widget]
    for child in getattr(widget, "children", ()) or ():
        found += _tree(child)
    return found


async def test_the_form_follows_the_selection(client: TFaaSClient, seed_dir: Path,
                                              tmp_path: Path) -> None:
    """Two models: the header, the try-it form and its values follow the selected one;
    long key names are readable in full; a rename is said where the upload was made."""
    built = await in_thread(tfmodels.make_keras_file, tmp_path / "k")
    browser: ModelBrowser = await in_thread(ModelBrowser, client)
    # Upload… reads as the panel's button: the file picker (which would say
    # "Upload… (0)") lies unseen over it, in a stack as large as it
    assert browser.upload_face.description == "Upload…"
    assert browser.upload_face.tabbable is False
    stack = next(box for box in _tree(browser.widget)
                 if browser.file_upload in getattr(box, "children", ()))
    assert stack.children == (browser.upload_face, browser.file_upload)
    assert "jp-tfaas-stack" in stack._dom_classes
    assert "jp-tfaas-hit" in browser.file_upload._dom_classes
    # no button or file picker shows a "null" tooltip
    for widget in _tree(browser.widget):
        if hasattr(widget, "tooltip") and isinstance(widget, (type(browser.refresh_button),
                                                              type(browser.file_upload))):
            assert widget.tooltip, widget

    await pick(browser, built.path)
    assert browser.last_error is None, browser.last_error
    assert browser.upload_progress.value == 1.0 and browser.upload_progress.bar_style == "success"

    doc = json.loads((seed_dir / "input.json").read_text())
    params = json.loads((seed_dir / "params.json").read_text())
    params["keys"] = doc["keys"]
    params["description"] = "<b>vk</b> & co"
    (tmp_path / "params.json").write_text(json.dumps(params))
    browser.name_text.value = "vk_renamed"  # params.json says "vk"
    await pick(browser, seed_dir / "model.pb", tmp_path / "params.json")
    assert browser.last_error is None, browser.last_error
    assert "stored as &#x27;vk_renamed&#x27;" in browser.upload_message.value
    assert browser.selected == "vk_renamed"
    assert "Try vk_renamed (version 1)" in browser.try_title.value
    assert browser.model_names == ("tiny", "vk_renamed")
    # the key names in full, as label and tooltip, with room to show them
    longest = max(doc["keys"], key=len)
    field = browser.key_fields[longest]
    assert field.description == field.tooltip == longest
    assert field.style.description_width == "initial"
    # params one per line as the panel shows them, every value escaped
    info = browser.model_cards["vk_renamed"].value
    assert "description: &lt;b&gt;vk&lt;/b&gt; &amp; co" in info and "<b>vk</b>" not in info
    assert '<div class="jp-tfaas-value">inputNode: dense_1_input</div>' in info
    assert "<dt>Keys</dt>" in info and "{" not in info

    for key, value in zip(doc["keys"], doc["values"]):
        browser.key_fields[key].value = value
    await in_thread(browser.predict_button.click)
    assert browser.last_error is None, browser.last_error
    assert [s[0] for s in shown_result(browser)] == ["output_0"]

    # the curl line for this server: the form's request, and it works as shown
    line = await in_thread(browser.copy_curl)
    assert f'<code class="jp-tfaas-curl" data-tfaas="curl-text">{html.escape(line)}</code>' \
        == browser.curl_html.value
    assert line.startswith("curl ") and '"Authorization: token $JUPYTER_TOKEN"' in line
    assert client.url + "json" in line and '"keys":' in line

    # another model, by a click on its card: title, form and values follow; the old
    # result is gone; the card is marked as the panel marks it, the other one not
    await in_thread(browser.model_picks["tiny"].click)
    assert browser.selected == "tiny" and browser.last_error is None
    assert browser.model_cards["tiny"].value.startswith(
        '<li class="jp-tfaas-model jp-mod-selected" data-model="tiny" role="option" '
        'aria-selected="true">')
    assert browser.model_cards["vk_renamed"].value.startswith(
        '<li class="jp-tfaas-model" data-model="vk_renamed" role="option" '
        'aria-selected="false">')
    # every card says what the listing says; the other one's details stay shown
    assert "<dt>Keys</dt>" in browser.model_cards["vk_renamed"].value
    assert "<dt>Keys</dt>" not in browser.model_cards["tiny"].value
    assert "Try tiny (version 1)" in browser.try_title.value
    assert browser.key_fields == {} and browser.result_html.value == ""
    assert browser.curl_html.value == ""
    assert browser.try_message.value == "" and browser.predictions is None
    browser.values_text.value = "1, 2, 3"
    await in_thread(browser.select, "vk_renamed")
    await in_thread(browser.select, "tiny")
    assert json.loads(browser.values_text.value) == [0] * tfmodels.N_IN  # reset
    browser.values_text.value = ", ".join(["0.5"] * (tfmodels.N_IN + 1))
    await in_thread(browser.predict_button.click)
    assert browser.last_error == f"tiny takes {tfmodels.N_IN} values per row; row 1 has " \
        f"{tfmodels.N_IN + 1}"
    browser.close()


class _StubClient:
    """Answers as a server would, with markup where text is expected."""

    url = "http://127.0.0.1:1/<x>/tfaas/"

    def status(self) -> dict[str, Any]:
        return {"worker": {"state": "<i>running</i>"}, "tensorflow": "2.<b>",
                "models_loaded": ["a<b"], "models": {"a<b": {"requests": 3,
                                                              "p99_latency_ms": 1.25}}}


def test_everything_shown_as_html_is_escaped() -> None:
    browser = ModelBrowser(_StubClient(), load=False)  # type: ignore[arg-type]
    browser.refresh_status()
    shown = browser.status_html.value
    for raw in ("<i>running", "2.<b>", "a<b"):
        assert raw not in shown
    for escaped in ('data-status="worker">&lt;i&gt;running&lt;/i&gt;<',
                    'data-status="tensorflow">2.&lt;b&gt;<', 'data-status="loaded">a&lt;b<',
                    'data-status="p99">≤ 1.25 ms<'):
        assert escaped in shown, shown
    header = browser.widget.children[0].children[0].value
    assert "&lt;x&gt;" in header and "<x>" not in header
    detail = {"name": "m<", "versions": [1, "<2>"], "format": "<f>", "version": 1,
              "inputs": [{"name": "<in>", "shape": [None, 3]}], "outputs": [],
              "keys": ["<k>"], "label_names": ["<l>"], "extra": {"<p>": [1, 2]},
              "version_labels": {"<s>": 1}}
    info = model_html(detail)
    for raw in ("<2>", "<f>", "<in>", "<k>", "<l>", "<p>", "<s>", 'data-model="m<"'):
        assert raw not in info, raw
    assert "&lt;in&gt; [?, 3]" in info and "extra: {&quot;&lt;p&gt;&quot;: [1, 2]}" in info
    assert 'data-model="m&lt;"' in info and "&lt;s&gt;: 1" in info
    result = result_html(np.array([[0.25, 2.0]]), ['<a">', "b"])
    assert '<tr data-label="&lt;a&quot;&gt;"><th>&lt;a&quot;&gt;</th>' in result
    assert "<a" not in result.replace("<a ", "")


def test_classify_upload_and_result() -> None:
    parts = classify_upload([("m.tar.gz", b"1"), ("params.json", b"{}"), ("l.txt", b"a")])
    assert set(parts) == {"model", "params", "labels"}
    with pytest.raises(ValueError, match="no model file"):
        classify_upload([("params.json", b"{}")])
    with pytest.raises(ValueError, match="two model files: a.pb and b.keras"):
        classify_upload([("a.pb", b""), ("b.keras", b"")])
    with pytest.raises(ValueError, match="not a model"):
        classify_upload([("a.exe", b"")])
    # probabilities get a bar as long as they are; other values a number only
    shown = result_html(np.array([[0.2, 0.8, -4.0, 3.0]]), ["a", "b", "c", "d"])
    assert re.findall(r'<div class="jp-tfaas-bar"([^>]*)>', shown) == [
        ' style="width:20.0%"', ' style="width:80.0%"', "", ""]
    # six significant digits, as the panel (JavaScript's toPrecision(6))
    assert re.findall(r'class="jp-tfaas-number" data-value="([^"]*)">([^<]*)<', shown) == [
        ("0.2", "0.200000"), ("0.8", "0.800000"), ("-4.0", "-4"), ("3.0", "3")]
    # worker, TF, loaded, rate, p99, cold starts, devices: each pending
    assert status_html(None).count("…") == len(STATUS_STRIP) == 7
