"""The JupyterLab side panel (labextension/): its unit tests (jest), and the panel in a
real ``jupyter lab`` driven through Debian's Chromium by Playwright."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tfmodels
from helpers import ROOT, load_example, seed_upload_body
from servers import jupyter_server

from tfaas_jupyter.client.vocabulary import WORDS
from tfaas_jupyter.server.stats import Histogram

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
LABEXTENSION = ROOT / "labextension"
pytestmark = pytest.mark.timeout(900)


def jlpm() -> str:
    found = shutil.which("jlpm") or shutil.which("jlpm", path=str(Path(sys.executable).parent))
    assert found, "jlpm (from jupyter-builder) is missing: pip install -e '.[test]'"
    return found


def test_panel_logic_unit_tests() -> None:
    """jest: model list shaping, status strip, try-it parsing, curl and upload rules."""
    env = {**os.environ, "YARN_ENABLE_PROGRESS_BARS": "false", "CI": "true"}
    subprocess.run([jlpm(), "install", "--immutable"], cwd=LABEXTENSION, check=True, env=env,
                   capture_output=True, timeout=600)
    out = subprocess.run([jlpm(), "test"], cwd=LABEXTENSION, env=env, capture_output=True,
                         text=True, timeout=600)
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    assert "failed" not in report.split("Tests:")[-1].split("\n")[0], report


def test_status_p99_is_the_upper_bound_of_its_bucket() -> None:
    histogram = Histogram()
    assert histogram.quantile(0.99) is None
    for _ in range(99):
        histogram.observe(0.002)  # the 0.0025 bucket
    histogram.observe(0.04)  # 0.05: the 100th of 100 is beyond the 99th percentile
    assert histogram.quantile(0.99) == 0.0025
    histogram.observe(0.3)  # 0.5: now the 99.99th of 101 is the 0.04
    assert histogram.quantile(0.99) == 0.05
    assert histogram.quantile(1.0) == 0.5


def seed_reference(values: list[float]) -> float:
    """The seed model's output for one row: a numpy forward pass of its weights."""
    seed = load_example("make_seed_model")
    layers = seed._weights()
    # as the script builds it: the last bias puts the talk's row at TARGET_LOGIT
    demo = np.asarray([seed.VALUES], dtype=np.float32)
    w, b = layers[-1]
    layers[-1] = (w, (b + (seed.TARGET_LOGIT - seed._forward_logit(demo, layers)[0]))
                  .astype(np.float32))
    logit = seed._forward_logit(np.asarray([values], dtype=np.float32), layers)
    return float(1.0 / (1.0 + np.exp(-logit[0, 0])))


def shown_outputs(page) -> list[tuple[str, float, str]]:
    """The try-it result: (label, exact value, text shown) per output of the first row."""
    rows = page.locator('#tfaas-sidebar [data-tfaas="result"] [data-row="0"] tr[data-label]')
    out = []
    for i in range(rows.count()):
        row = rows.nth(i)
        number = row.locator("td.jp-tfaas-number")
        out.append((row.get_attribute("data-label"), float(number.get_attribute("data-value")),
                    number.inner_text()))
    return out


def open_panel(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded", timeout=120_000)
    tab = page.locator('.jp-SideBar [data-id="tfaas-sidebar"]')
    tab.wait_for(timeout=120_000)
    if not page.locator("#tfaas-sidebar").is_visible():
        tab.click()
    page.locator("#tfaas-sidebar").wait_for(state="visible")


def predict_in_panel(page, model: str, values: list) -> list[tuple[str, float, str]]:
    panel = page.locator("#tfaas-sidebar")
    panel.locator(f'[data-model="{model}"]').click()
    panel.locator('[data-tfaas="values"]').fill(json.dumps(values))
    panel.locator('[data-tfaas="result"]').evaluate("node => node.replaceChildren()")
    panel.locator('[data-tfaas="predict"]').click()
    panel.locator('[data-tfaas="result"] tr[data-label]').first.wait_for(timeout=120_000)
    return shown_outputs(page)


def drop_files(page, target: str, files: list[Path]) -> None:
    """Drop ``files`` on ``target`` as a user dragging them from a file manager does."""
    payload = [{"name": f.name, "b64": base64.b64encode(f.read_bytes()).decode()}
               for f in files]
    page.locator(target).evaluate(
        """(node, files) => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), c => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name));
            }
            for (const kind of ['dragenter', 'dragover', 'drop']) {
                node.dispatchEvent(new DragEvent(kind, {dataTransfer: transfer, bubbles: true,
                                                        cancelable: true}));
            }
        }""", payload)


def wait_for_model(page, name: str, timeout: float = 180_000) -> None:
    """Wait until the panel lists ``name``; on a timeout, say what the notifications said."""
    try:
        page.locator(f'#tfaas-sidebar [data-model="{name}"]').wait_for(timeout=timeout)
    except sync_api.TimeoutError:
        toasts = page.locator(".Toastify__toast")
        said = [toasts.nth(i).inner_text() for i in range(toasts.count())]
        raise AssertionError(f"{name} not listed; notifications: {said}") from None


def use_dark_theme(page) -> None:
    """Switch Lab to its dark theme from the command palette, as a user does."""
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette input").fill("Use Theme: JupyterLab Dark")
    page.locator(".lm-CommandPalette-item", has_text="JupyterLab Dark").first.click()
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'",
                           timeout=60_000)


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    )


def test_the_panel_in_jupyter_lab(tmp_path: Path, seed_dir: Path, built: dict) -> None:
    keras_file = built["keras_file"]
    with jupyter_server(tmp_path / "lab", app="lab", base_url="/user/alice/") as srv:
        body, ctype = seed_upload_body(seed_dir)
        code, answer = srv.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
        assert code == 200, answer
        with sync_api.sync_playwright() as pw:
            browser = launch(pw)
            context = browser.new_context(viewport={"width": 1100, "height": 900})
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            open_panel(page, f"{srv.url}lab?token={srv.token}")
            panel = page.locator("#tfaas-sidebar")

            # the model uploaded over REST, with what the server knows of it
            vk = panel.locator('[data-model="vk"]')
            vk.wait_for(timeout=60_000)
            assert panel.locator("[data-model]").count() == 1
            text = vk.inner_text()
            for part in ("graphdef", "dense_1_input float32 [?, 42]", "signal",
                         "inputNode: dense_1_input"):
                assert part in text, text
            # the status strip, from /status
            strip = panel.locator('[data-tfaas="status"]')
            page.wait_for_function(
                "() => document.querySelector('#tfaas-sidebar [data-status=worker]')"
                ".textContent !== '…'", timeout=60_000)
            assert strip.locator('[data-status="tensorflow"]').inner_text()

            # predict with the try-it form; the numbers are the model's
            talk = json.loads((seed_dir / "input.json").read_text())["values"]
            row = [round(v * 1.1 + 0.05, 6) for v in talk]  # not the row the bias was fit to
            ((label, value, shown),) = predict_in_panel(page, "vk", row)
            expected = seed_reference(row)
            assert label == "signal"
            assert value == pytest.approx(expected, rel=1e-5)
            assert float(shown) == pytest.approx(expected, rel=1e-5)
            assert len(shown.replace("0.", "", 1)) >= 4, shown  # >= 4 significant digits
            shot = tmp_path / "panel.png"
            panel.screenshot(path=str(shot))
            assert shot.stat().st_size > 5000
            if os.environ.get("TFAAS_UPDATE_SCREENSHOT"):
                shutil.copyfile(shot, ROOT / "docs" / "panel.png")

            # upload a .keras file through the panel's file picker
            panel.locator('[data-tfaas="name"]').fill("tiny")
            with page.expect_file_chooser() as chooser:
                panel.locator('[data-tfaas="upload"]').click()
            chooser.value.set_files(str(keras_file.path))
            wait_for_model(page, "tiny")
            # (the panel's 5 s poll may list it a moment before the upload's answer lands)
            sync_api.expect(panel.locator('[data-tfaas="upload-state"]')).to_contain_text(
                "tiny version 1 uploaded", timeout=60_000)
            # the original's form files (model.pb, params.json, labels.txt) dropped on it:
            # named by params.json, so a second version of vk
            drop_files(page, '#tfaas-sidebar [data-tfaas="drop"]',
                       [seed_dir / "model.pb", seed_dir / "params.json", seed_dir / "labels.txt"])
            sync_api.expect(panel.locator('[data-tfaas="upload-state"]')).to_contain_text(
                "vk version 2 uploaded", timeout=180_000)
            vk.locator("dd", has_text="1, 2").wait_for()
            # a SavedModel archive through the picker, named after its file
            export = built["keras_export"]
            with page.expect_file_chooser() as chooser:
                panel.locator('[data-tfaas="upload"]').click()
            chooser.value.set_files(str(export.extra["tar_top"]))
            wait_for_model(page, "exported_top")
            assert "savedmodel" in panel.locator('[data-model="exported_top"]').inner_text()
            code, models = srv.json("GET", "tfaas/models")
            assert sorted(m["name"] for m in models) == ["exported_top", "tiny", "vk"]
            assert next(m for m in models if m["name"] == "vk")["versions"] == [1, 2]
            ((_, value, _),) = predict_in_panel(page, "vk", row)  # version 2
            assert value == pytest.approx(expected, rel=1e-5)
            six = [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]
            cells = predict_in_panel(page, "exported_top", six)
            assert [c[1] for c in cells] == pytest.approx(
                export.reference([np.asarray(six, dtype=np.float32)])[0][0].tolist(), rel=1e-5)
            assert srv.request("DELETE", "tfaas/delete/exported_top")[0] == 200
            tiny_row = [[0.5, -1.0, 2.0, 0.25, 1.5, -0.75], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]
            cells = predict_in_panel(page, "tiny", tiny_row)
            reference = keras_file.reference([np.asarray(tiny_row, dtype=np.float32)])[0]
            assert [c[0] for c in cells] == ["output_0", "output_1", "output_2"]
            assert [c[1] for c in cells] == pytest.approx(reference[0].tolist(), rel=1e-5)
            second = page.locator('#tfaas-sidebar [data-tfaas="result"] [data-row="1"] '
                                  "td.jp-tfaas-number")
            assert [float(second.nth(i).get_attribute("data-value")) for i in range(3)] == \
                pytest.approx(reference[1].tolist(), rel=1e-5)
            # the status strip follows by itself while the panel is visible (5 s polls)
            sync_api.expect(panel.locator('[data-status="loaded"]')).to_contain_text(
                "tiny", timeout=60_000)
            rate = panel.locator('[data-status="rate"]').inner_text()
            assert rate.endswith("req/s"), rate

            # the copy-curl line for this server, and it works as copied
            context.grant_permissions(["clipboard-read", "clipboard-write"])
            panel.locator('[data-tfaas="curl"]').click()
            curl_text = panel.locator('[data-tfaas="curl-text"]')
            curl_text.wait_for()
            line = curl_text.inner_text()
            assert f"{srv.url}tfaas/json" in line and "$JUPYTER_TOKEN" in line, line
            run = subprocess.run(["bash", "-c", line], capture_output=True, text=True,
                                 env={**os.environ, "JUPYTER_TOKEN": srv.token}, timeout=120)
            assert np.allclose(json.loads(run.stdout), reference, rtol=1e-5), run

            # the model's own OpenAPI description, linked for client generators
            href = panel.locator('[data-tfaas="openapi"]').get_attribute("href")
            assert href.endswith("/tfaas/models/tiny/openapi.json"), href
            described = srv.call("GET", href[href.index("tfaas/"):])
            assert "/json" in described["paths"], sorted(described["paths"])

            # an API error is a Lab notification with the server's message
            panel.locator('[data-model="tiny"]').click()
            panel.locator('[data-tfaas="values"]').fill("[1, 2, 3, 4, 5, 6]")
            srv.request("DELETE", "tfaas/delete/tiny")  # gone behind the panel's back
            panel.locator('[data-tfaas="predict"]').click()
            # (the upload's success toast, which also names tiny, may still be up)
            toast = page.locator(".Toastify__toast", has_text="TFaaS predict")
            toast.first.wait_for(timeout=60_000)
            assert "tiny" in toast.first.inner_text()

            # delete with confirmation: Cancel keeps the model, Delete removes it
            page.locator('[data-tfaas="refresh"]').click()
            panel.locator('[data-model="tiny"]').wait_for(state="detached", timeout=60_000)
            # from the keyboard: the Delete key on a focused model asks; Escape cancels
            vk.focus()
            page.keyboard.press("Delete")
            dialog = page.locator(".jp-Dialog")
            dialog.wait_for()
            assert "Delete vk" in dialog.inner_text()
            page.keyboard.press("Escape")
            dialog.wait_for(state="detached")
            vk.locator('[data-tfaas="delete"]').click()
            dialog.wait_for()
            dialog.locator("button", has_text="Cancel").click()
            dialog.wait_for(state="detached")
            assert srv.json("GET", "tfaas/models")[1][0]["name"] == "vk"
            vk.locator('[data-tfaas="delete"]').click()
            dialog.wait_for()
            dialog.locator("button", has_text="Delete").click()
            vk.wait_for(state="detached", timeout=60_000)
            assert srv.json("GET", "tfaas/models") == (200, [])
            assert "No models yet" in panel.locator('[data-tfaas="models"]').inner_text()

            # the palette's commands
            page.keyboard.press("Control+Shift+C")
            page.locator(".lm-CommandPalette input").fill("TFaaS")
            items = page.locator(".lm-CommandPalette-item", has_text="TFaaS")
            labels = [items.nth(i).inner_text() for i in range(items.count())]
            # in the vocabulary's words
            for key in ("command_open", "command_refresh", "command_upload"):
                assert any(WORDS[key] in t for t in labels), (WORDS[key], labels)
            assert any("Open the Models Panel" in t for t in labels), labels
            page.keyboard.press("Escape")

            # Lab's theme variables: the dark theme darkens the panel too
            def background() -> str:
                return panel.evaluate("node => getComputedStyle(node).backgroundColor")

            light = background()
            use_dark_theme(page)
            page.wait_for_function(
                "(before) => getComputedStyle(document.querySelector('#tfaas-sidebar'))"
                ".backgroundColor !== before", arg=light, timeout=60_000)
            dark = background()
            luminance = [sum(int(v) for v in c[c.index("(") + 1:c.index(")")].split(",")[:3])
                         for c in (light, dark)]
            assert luminance[1] < luminance[0], (light, dark)
            assert not errors, errors
            browser.close()


#: What the notebook widget shares with the panel: (element, computed properties).
SHARED_LOOK = (
    (".jp-tfaas-status", ("display", "background-color", "border-top-color",
                          "border-top-style", "border-top-left-radius")),
    (".jp-tfaas-status-cell .jp-tfaas-muted", ("color", "font-size")),
    ("[data-status=worker]", ("color", "font-size", "line-height")),
    (".jp-tfaas-heading", ("color", "text-transform", "font-weight", "font-size")),
    (".jp-tfaas-drop", ("border-top-style", "border-top-color")),
    ("[data-model]", ("display", "list-style-type", "padding-top", "padding-left",
                      "border-top-width", "border-top-style", "border-top-left-radius",
                      "margin-bottom", "cursor")),
    (".jp-tfaas-model.jp-mod-selected", ("border-top-color", "background-color")),
    (".jp-tfaas-model:not(.jp-mod-selected)", ("border-top-color", "background-color")),
    (".jp-tfaas-model-head", ("display", "column-gap", "align-items")),
    (".jp-tfaas-model-name", ("font-weight",)),
    (".jp-tfaas-badge", ("background-color", "color", "font-size")),
    (".jp-tfaas-details", ("display", "font-size", "column-gap")),
    (".jp-tfaas-details dt", ("color", "display")),
    (".jp-tfaas-details dd", ("color", "font-family", "margin-left", "line-height")),
    ("[data-tfaas=result] .jp-tfaas-number", ("font-family", "text-align")),
    ("[data-tfaas=result] .jp-tfaas-bar", ("background-color", "height")),
)


def computed_look(page, root: str) -> dict[str, dict[str, str]]:
    """The computed styles of SHARED_LOOK's elements (the first of each) under ``root``,
    and of ``root`` itself (text colour, font, background)."""
    return page.evaluate(
        """([root, wanted]) => {
            const top = document.querySelector(root);
            const look = {};
            const style = getComputedStyle(top);
            look[':root'] = {color: style.color, 'font-family': style.fontFamily,
                             'background-color': style.backgroundColor};
            for (const [selector, properties] of wanted) {
                const node = top.querySelector(selector);
                if (!node) { look[selector] = null; continue; }
                const computed = getComputedStyle(node);
                look[selector] = Object.fromEntries(
                    properties.map(p => [p, computed.getPropertyValue(p)]));
            }
            return look;
        }""", [root, [[s, list(p)] for s, p in SHARED_LOOK]])


def texts(page, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def model_list(page, root: str) -> list[dict]:
    """The model list under ``root`` element by element: per ``[data-model]`` its tag,
    classes, role, aria-selected, its head's parts (class and text) and its details
    (term, values). The panel's per-model Delete button is left out: the widget deletes
    below the list (a version or all)."""
    return page.evaluate(
        """(root) => [...document.querySelectorAll(`${root} [data-model]`)].map(item => ({
            model: item.dataset.model, tag: item.tagName, classes: item.className,
            role: item.getAttribute('role'), selected: item.getAttribute('aria-selected'),
            head: [...item.querySelector('.jp-tfaas-model-head').children]
                .filter(part => part.dataset.tfaas !== 'delete')
                .map(part => [part.className, part.textContent]),
            details: [...item.querySelectorAll('.jp-tfaas-details > dt')].map(term =>
                [term.textContent, [...term.nextElementSibling.children].map(
                    value => [value.className, value.textContent])]),
        }))""", root)


def middle(locator) -> tuple[float, float]:
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def click_where_shown(page, locator) -> None:
    """Click the middle of what ``locator`` shows, as a person does: whatever lies on
    top there takes the click."""
    page.mouse.click(*middle(locator))


def on_top_of(locator) -> dict:
    """What takes a click on the middle of ``locator``'s element: its classes, whether
    it covers the whole element, its opacity."""
    locator.scroll_into_view_if_needed()
    return locator.evaluate(
        """node => {
            const r = node.getBoundingClientRect();
            const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
            const t = top.getBoundingClientRect();
            return {classes: top.className, tag: top.tagName,
                    covers: t.left <= r.left + 0.5 && t.top <= r.top + 0.5 &&
                            t.right >= r.right - 0.5 && t.bottom >= r.bottom - 0.5,
                    opacity: getComputedStyle(top).opacity};
        }""")


def run_first_cell(page) -> None:
    """Run the notebook's first cell from the keyboard, as a user does: once its kernel
    is idle, and again if the cell did not start.

    Lab can drop a run, without a word, while the notebook's kernel connection settles
    after the page opened (the prompt stays ``[ ]``); a user presses again."""
    page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status=idle]"
                 ).wait_for(timeout=240_000)
    started = ("() => /\\[(\\*|\\d+)\\]/.test(document.querySelector("
               "'.jp-Notebook .jp-Cell .jp-InputPrompt').textContent)")
    for attempt in range(5):
        page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
        page.keyboard.press("Control+Enter")
        try:
            page.wait_for_function(started, timeout=15_000)
            return
        except sync_api.TimeoutError:
            if attempt == 4:
                raise


def outline(locator) -> dict:
    return locator.evaluate(
        """node => { const s = getComputedStyle(node);
                     return {style: s.outlineStyle, color: s.outlineColor,
                             width: s.outlineWidth, offset: s.outlineOffset}; }""")


def test_the_widget_in_lab_looks_like_the_panel(tmp_path: Path, seed_dir: Path) -> None:
    """``%tfaas browser`` run in a notebook of a real ``jupyter lab``, beside the panel:
    the same words and, element for element, the same computed styles from the panel's
    stylesheet and Lab's theme variables, in the light theme and the dark one; its
    try-it form gives the model's numbers."""
    home = tmp_path / "lab"
    tiny = tfmodels.make_keras_file(tmp_path / "k")
    with jupyter_server(home, app="lab") as srv:
        body, ctype = seed_upload_body(seed_dir)
        code, answer = srv.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
        assert code == 200, answer
        source = "%load_ext tfaas_jupyter\nbrowser = %tfaas browser\nbrowser"
        notebook = {"nbformat": 4, "nbformat_minor": 4, "cells": [
            {"cell_type": "code", "source": source, "metadata": {}, "outputs": [],
             "execution_count": None}],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}}}
        (home / "browser.ipynb").write_text(json.dumps(notebook))
        with sync_api.sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            open_panel(page, f"{srv.url}lab/tree/browser.ipynb?token={srv.token}")
            run_first_cell(page)
            widget = page.locator(".jp-OutputArea .jp-tfaas-widget")
            try:
                widget.wait_for(timeout=240_000)
            except sync_api.TimeoutError:
                said = page.locator(".jp-Notebook .jp-Cell").first.inner_text()
                raise AssertionError(f"no widget; the cell shows: {said!r}") from None
            widget.locator('[data-model="vk"]').wait_for(timeout=60_000)
            page.wait_for_function(
                "() => document.querySelector('.jp-tfaas-widget [data-status=worker]')"
                ".textContent !== '…'", timeout=60_000)
            sidebar = page.locator("#tfaas-sidebar")

            # Upload… reads as the panel's button; a click on it opens the file picker
            face = widget.locator(".jp-tfaas-drop .jp-tfaas-stack > .jp-tfaas-button")
            assert face.inner_text().strip() == \
                sidebar.locator('[data-tfaas="upload"]').inner_text().strip() == "Upload…"
            top = on_top_of(face)
            assert "widget-upload" in top["classes"] and top["covers"], top
            assert top["opacity"] == "0", top
            with page.expect_file_chooser() as chooser:
                click_where_shown(page, face)
            chooser.value.set_files(str(tiny.path))
            widget.locator('[data-model="tiny"].jp-mod-selected').wait_for(timeout=180_000)
            assert "tiny version 1 uploaded" in widget.locator(".jp-tfaas-drop").inner_text()
            sidebar.locator('[data-model="tiny"]').wait_for(timeout=60_000)  # its 5 s poll

            # the model list: a click on a card selects it, as in the panel ...
            card = widget.locator('[data-model="vk"]')
            top = on_top_of(card)
            assert "jp-tfaas-hit" in top["classes"] and top["covers"], top
            click_where_shown(page, card)
            widget.locator('[data-model="vk"].jp-mod-selected').wait_for(timeout=60_000)
            assert widget.locator(".jp-mod-selected").count() == 1
            widget.locator(".jp-tfaas-tryit .jp-tfaas-heading",
                           has_text="Try vk (version 1)").wait_for()
            # ... and from the keyboard: Shift+Tab to the card above shows the panel's
            # focus ring on it, Enter selects it
            widget.locator(".jp-tfaas-stack:has([data-model='vk']) > .jp-tfaas-hit").focus()
            page.keyboard.press("Shift+Tab")
            ring = outline(widget.locator('[data-model="tiny"]'))
            assert ring["style"] == "solid", ring
            page.keyboard.press("Enter")
            widget.locator('[data-model="tiny"].jp-mod-selected').wait_for(timeout=60_000)
            assert widget.locator('[data-model="vk"]').get_attribute("aria-selected") == \
                "false"
            sidebar.locator('[data-model="vk"]').focus()
            page.keyboard.press("ArrowUp")
            assert outline(sidebar.locator('[data-model="tiny"]')) == ring
            # element for element the panel's list, the same model selected in both
            sidebar.locator('[data-model="tiny"]').click()
            assert model_list(page, ".jp-tfaas-widget") == model_list(page, "#tfaas-sidebar")
            assert [m["model"] for m in model_list(page, ".jp-tfaas-widget")] == ["tiny", "vk"]
            click_where_shown(page, card)
            widget.locator('[data-model="vk"].jp-mod-selected').wait_for(timeout=60_000)

            # the try-it form in the notebook: the model's numbers, six digits
            talk = json.loads((seed_dir / "input.json").read_text())["values"]
            row = [round(v * 0.9 - 0.02, 6) for v in talk]
            widget.locator(".jp-tfaas-values input").fill(json.dumps(row))
            widget.locator("button", has_text="Predict").click()
            number = widget.locator('[data-tfaas="result"] td.jp-tfaas-number')
            number.wait_for(timeout=120_000)
            expected = seed_reference(row)
            assert float(number.get_attribute("data-value")) == pytest.approx(expected, rel=1e-5)
            assert float(number.inner_text()) == pytest.approx(expected, rel=1e-5)
            assert len(number.inner_text().replace("0.", "", 1)) >= 4, number.inner_text()
            # and in the panel, for its result's look
            predict_in_panel(page, "vk", row)

            # the same words: section headings, status labels, model fields, buttons
            panel, ours = "#tfaas-sidebar", ".jp-tfaas-widget"
            for selector in (".jp-tfaas-heading:not(.jp-tfaas-tryit *)",
                             ".jp-tfaas-status-cell .jp-tfaas-muted",
                             '[data-model="vk"] dt', ".jp-tfaas-tryit .jp-tfaas-heading",
                             ".jp-tfaas-tryit label.jp-tfaas-muted", "[data-tfaas=result] th"):
                assert texts(page, f"{ours} {selector}") == \
                    texts(page, f"{panel} {selector}"), selector
            assert texts(page, f"{ours} [data-model=vk] dt") == [
                "Versions", "Format", "Inputs", "Outputs", "Labels", "Params"]
            for button in ("Refresh", "Upload…", "Delete", "Predict", "Copy curl"):
                assert widget.locator("button", has_text=button).count() >= 1, button
                assert page.locator(panel).locator(".jp-tfaas-button",
                                                   has_text=button).count() >= 1, button

            # the same look, in the light theme and in the dark one
            light = computed_look(page, ours)
            assert None not in light.values(), light
            assert light == computed_look(page, panel)
            widget.screenshot(path=str(tmp_path / "widget.png"))  # to look at on a failure
            use_dark_theme(page)
            page.wait_for_function(
                "(before) => getComputedStyle(document.querySelector('.jp-tfaas-widget'))"
                ".color !== before", arg=light[":root"]["color"], timeout=60_000)
            dark = computed_look(page, ours)
            assert dark == computed_look(page, panel)
            assert dark[".jp-tfaas-status"] != light[".jp-tfaas-status"]
            assert not errors, errors
            browser.close()
