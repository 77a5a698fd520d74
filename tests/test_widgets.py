"""The model browser, driven from Python against a real server (pytest-jupyter).

Widgets are changed as a user would (``.value``, ``.click()``), then the server's
state is checked through the client. Every blocking call runs in a thread: the
server runs in this process's event loop, which a blocking call would deadlock.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import tfmodels

from tfaas_jupyter.client import TFaaSClient
from tfaas_jupyter.client.widgets import ModelBrowser, bar_chart, classify_upload


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
def client(jp_fetch, jp_http_port: int, jp_base_url: str, jp_serverapp):
    c = TFaaSClient(f"http://localhost:{jp_http_port}{jp_base_url}",
                    token=jp_serverapp.identity_provider.token, timeout=240)
    yield c
    c.close()


def picked(*paths: Path, names: list[str] | None = None) -> tuple[dict[str, Any], ...]:
    """What FileUpload.value holds after the user picked these files."""
    items = []
    for i, path in enumerate(paths):
        data = path.read_bytes()
        items.append({"name": names[i] if names else path.name, "type": "",
                      "size": len(data), "content": memoryview(data),
                      "last_modified": datetime.now(timezone.utc)})
    return tuple(items)


async def test_upload_try_delete_graphdef_with_keys(client: TFaaSClient, seed_dir: Path,
                                                   tmp_path: Path) -> None:
    browser: ModelBrowser = await call(ModelBrowser, client)
    assert browser.models_select.options == () and browser.last_error is None
    assert "no models" in browser.model_info.value

    doc = json.loads((seed_dir / "input.json").read_text())
    keys, values = doc["keys"], doc["values"]
    params = json.loads((seed_dir / "params.json").read_text())
    params["keys"] = keys  # one input field per key in the try-it form
    (tmp_path / "params.json").write_text(json.dumps(params))

    browser.name_text.value = "vk"
    browser.file_upload.value = picked(seed_dir / "model.pb", tmp_path / "params.json",
                                       seed_dir / "labels.txt")
    await call(browser.upload_button.click)
    assert browser.last_error is None, browser.last_error
    assert browser.upload_progress.value == 1.0
    assert "uploaded vk version 1" in browser.upload_message.value
    assert [m["name"] for m in await call(client.models)] == ["vk"]
    assert browser.selected == "vk"
    assert "signal" in browser.model_info.value

    # Try it: one field per key.
    assert list(browser.key_fields) == keys
    for key, value in zip(keys, values):
        browser.key_fields[key].value = value
    await call(browser.predict_button.click)
    assert browser.last_error is None, browser.last_error
    expected = await call(client.predict, "vk", dict(zip(keys, values)))
    np.testing.assert_allclose(browser.predictions, expected, rtol=1e-6)
    assert len(browser.bars) == 1 and browser.bars[0].value == pytest.approx(expected[0])
    label = browser.result_box.children[0].children[0].children[0].value
    assert label == "signal"

    # A second version, then delete version 1 only (two steps).
    browser.name_text.value = "vk"
    browser.file_upload.value = picked(seed_dir / "model.pb", tmp_path / "params.json")
    await call(browser.upload_button.click)
    assert (await call(client.model, "vk"))["versions"] == [1, 2]
    browser.version_dropdown.value = 1
    await call(browser.delete_button.click)
    assert browser.confirming and "vk version 1" in browser.delete_message.value
    await call(browser.cancel_button.click)
    assert not browser.confirming
    assert (await call(client.model, "vk"))["versions"] == [1, 2]
    browser.version_dropdown.value = 1
    await call(browser.delete_button.click)
    await call(browser.confirm_button.click)
    assert browser.last_error is None, browser.last_error
    assert (await call(client.model, "vk"))["versions"] == [2]

    # Delete all: the model is gone from the server and the list.
    await call(browser.delete_button.click)
    await call(browser.confirm_button.click)
    assert await call(client.models) == []
    assert browser.models_select.options == ()
    browser.close()


async def test_keras_file_values_box_status_and_errors(client: TFaaSClient,
                                                       tmp_path: Path) -> None:
    built = await call(tfmodels.make_keras_file, tmp_path / "k")
    browser: ModelBrowser = await call(ModelBrowser, client)
    # No name typed: the file's name is the model's.
    browser.file_upload.value = picked(built.path)
    await call(browser.upload_button.click)
    assert browser.last_error is None, browser.last_error
    assert browser.selected == "tiny"
    assert browser.key_fields == {}

    row = np.linspace(-1, 1, tfmodels.N_IN).astype(np.float32)
    browser.values_text.value = ", ".join(f"{v:.6f}" for v in row)
    await call(browser.predict_button.click)
    assert browser.last_error is None, browser.last_error
    expected = built.reference([row[None, :]])[0][0]
    np.testing.assert_allclose(browser.predictions, expected, rtol=1e-4, atol=1e-6)
    assert [b.value for b in browser.bars] == pytest.approx(expected.tolist(), abs=1e-5)
    labels = [r.children[0].value for r in browser.result_box.children[0].children]
    assert labels == ["output_0", "output_1", "output_2"]

    # A wrong number of values is an error message, not an exception.
    browser.values_text.value = "1, 2"
    await call(browser.predict_button.click)
    assert browser.last_error and "tiny expects 6 values per row, got 2" in browser.last_error
    assert "expects 6 values" in browser.try_message.value  # next to the form
    assert "expects" not in browser.message.value
    browser.values_text.value = "1, x"
    await call(browser.predict_button.click)
    assert "not a list of numbers" in (browser.last_error or "")

    # Status panel counts the requests.
    await call(browser.status_button.click)
    assert browser.status and browser.status["models"]["tiny"]["requests"] >= 2
    assert "tiny" in browser.status_html.value and "mean ms" in browser.status_html.value

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
    browser.file_upload.value = picked(bad)
    browser.name_text.value = "bad"
    await call(browser.upload_button.click)
    assert browser.last_error and "upload failed" in browser.upload_message.value
    assert "unreadable model" in browser.upload_message.value
    assert "upload failed" not in browser.message.value
    # the bytes were all sent, but a refused upload does not show a full bar
    assert browser.upload_progress.value == 0.0
    assert browser.upload_progress.bar_style == "danger"
    assert [m["name"] for m in await call(client.models)] == ["tiny"]
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
    built = await call(tfmodels.make_keras_file, tmp_path / "k")
    browser: ModelBrowser = await call(ModelBrowser, client)
    # no button or file picker shows a "null" tooltip
    for widget in _tree(browser.widget):
        if hasattr(widget, "tooltip") and isinstance(widget, (type(browser.upload_button),
                                                              type(browser.file_upload))):
            assert widget.tooltip, widget

    browser.file_upload.value = picked(built.path)
    await call(browser.upload_button.click)
    assert browser.last_error is None, browser.last_error
    assert browser.upload_progress.value == 1.0 and browser.upload_progress.bar_style == "success"

    doc = json.loads((seed_dir / "input.json").read_text())
    params = json.loads((seed_dir / "params.json").read_text())
    params["keys"] = doc["keys"]
    params["description"] = "<b>vk</b> & co"
    (tmp_path / "params.json").write_text(json.dumps(params))
    browser.name_text.value = "vk_renamed"  # params.json says "vk"
    browser.file_upload.value = picked(seed_dir / "model.pb", tmp_path / "params.json")
    await call(browser.upload_button.click)
    assert browser.last_error is None, browser.last_error
    assert "stored as &#x27;vk_renamed&#x27;" in browser.upload_message.value
    assert browser.selected == "vk_renamed"
    assert "selected: vk_renamed (graphdef, version 1 of 1)" in browser.message.value
    assert "2 model(s)" in browser.message.value
    # the key names in full, as label and tooltip, with room to show them
    longest = max(doc["keys"], key=len)
    field = browser.key_fields[longest]
    assert field.description == field.tooltip == longest
    assert field.style.description_width == "initial"
    # params as a table, every value escaped
    info = browser.model_info.value
    assert "&lt;b&gt;vk&lt;/b&gt; &amp; co" in info and "<b>vk</b>" not in info
    assert "<th style='text-align:left;padding:0 1em 0 0;vertical-align:top'>inputNode</th>" \
        in info and "{" not in info

    for key, value in zip(doc["keys"], doc["values"]):
        browser.key_fields[key].value = value
    await call(browser.predict_button.click)
    assert "vk_renamed: 1 output(s)" in browser.try_message.value

    # another model: header, form and values follow; the old result is gone
    await call(browser.select, "tiny")
    assert "selected: tiny (keras" in browser.message.value
    assert "vk_renamed" not in browser.message.value
    assert browser.key_fields == {} and browser.result_box.children == ()
    assert browser.try_message.value == "" and browser.predictions is None
    assert browser.values_text.placeholder == f"{tfmodels.N_IN} values separated by commas"
    browser.values_text.value = "1, 2, 3"
    await call(browser.select, "vk_renamed")
    await call(browser.select, "tiny")
    assert browser.values_text.value == ""  # reset on a model change
    browser.values_text.value = ", ".join(["0.5"] * (tfmodels.N_IN + 1))
    await call(browser.predict_button.click)
    assert browser.last_error == f"tiny expects {tfmodels.N_IN} values per row, got " \
        f"{tfmodels.N_IN + 1}"
    browser.close()


class _StubClient:
    """Answers as a server would, with markup where text is expected."""

    url = "http://127.0.0.1:1/<x>/tfaas/"

    def status(self) -> dict[str, Any]:
        return {"worker": {"state": "<i>running</i>"}, "tensorflow": "2.<b>",
                "models_on_disk": ["a<b"], "models_loaded": [], "getRequests": "<7>",
                "postRequests": 1, "deleteRequests": 0, "errors": "<e>",
                "models": {"a<b": {"requests": "<r>", "rows": 2, "errors": 0,
                                   "mean_latency_ms": 1.25}}}


def test_everything_shown_as_html_is_escaped() -> None:
    browser = ModelBrowser(_StubClient(), load=False)  # type: ignore[arg-type]
    browser.refresh_status()
    shown = browser.status_html.value
    for raw in ("<i>running", "2.<b>", "a<b", "<7>", "<e>", "<r>"):
        assert raw not in shown
    for escaped in ("&lt;i&gt;running&lt;/i&gt;", "a&lt;b", "GET &lt;7&gt;", "&lt;r&gt;", "1.2"):
        assert escaped in shown, shown
    detail = {"name": "m", "versions": [1, "<2>"], "format": "<f>", "version": 1,
              "inputs": [{"name": "<in>", "shape": [None, 3]}], "outputs": [],
              "keys": ["<k>"], "label_names": ["<l>"], "extra": {"<p>": [1, 2]}}
    info = ModelBrowser._describe(detail)
    for raw in ("<2>", "<f>", "<in>", "<k>", "<l>", "<p>"):
        assert raw not in info, raw
    assert "&lt;in&gt;[?,3]" in info and "{&quot;&lt;p&gt;&quot;: [1, 2]}" in info


def test_classify_upload_and_bar_chart() -> None:
    parts = classify_upload([("m.tar.gz", b"1"), ("params.json", b"{}"), ("l.txt", b"a")])
    assert set(parts) == {"model", "params", "labels"}
    with pytest.raises(ValueError, match="no model file"):
        classify_upload([("params.json", b"{}")])
    with pytest.raises(ValueError, match="two model files"):
        classify_upload([("a.pb", b""), ("b.keras", b"")])
    with pytest.raises(ValueError, match="not a model"):
        classify_upload([("a.exe", b"")])
    _, bars = bar_chart([0.2, 0.8], ["a", "b"])
    assert [b.max for b in bars] == [1.0, 1.0] and bars[1].bar_style == "success"
    _, bars = bar_chart([-4.0, 2.0], ["a", "b"])
    assert bars[0].max == 4.0 and bars[0].value == 4.0 and bars[1].value == 2.0
