"""The Lab front end beyond the side panel, in a real ``jupyter lab`` under a hub-like
base URL, driven through Debian's Chromium as a user does: the file browser's "Serve
with TFaaS" and "View graph", the graph view (Netron, served by the extension, no
request to any other origin), the palette's commands, the status-bar item and a
setting, the API explorer's "Try it out"; and the server routes behind them.

One Lab server and one browser page serve the whole module (Lab's start is slow on a
shared machine); the tests run in file order, each a user's next steps.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import numpy as np
import pytest
import tfmodels
from helpers import ROOT
from servers import jupyter_server
from test_lab import launch, open_panel, use_dark_theme, wait_for_model

from tfaas_jupyter.client.vocabulary import WORDS
from tfaas_jupyter.client.widgets import model_page_link_html

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.timeout(900)
DOCS = ROOT / "docs"
#: Netron's own outside calls, as its scripts name them: none may be made.
OUTSIDE = re.compile(r"ipinfo\.io|google-analytics|googletagmanager|github\.com")


@pytest.fixture
def jp_asyncio_loop():
    """A loop of its own for each test, never made current: the module's Playwright
    (sync API) keeps its loop current and running across the tests, and
    pytest-jupyter's fixture would close that one."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def jp_server_cleanup():
    """Nothing to clean: the Lab server here is a subprocess. pytest-jupyter's autouse
    cleanup would make the in-process ServerApp's _cleanup() coroutine and fail to run
    it beside Playwright's running loop, leaving it never awaited (an error, as every
    warning is)."""
    yield


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """A Lab server whose contents hold a .keras file and a folder that is no model."""
    home = tmp_path_factory.mktemp("lab-views")
    keras_file = tfmodels.make_keras_file(home / "built")
    shutil.copyfile(keras_file.path, home / "tiny.keras")
    (home / "notes").mkdir()
    (home / "notes" / "readme.txt").write_text("not a model\n")
    (home.parent / "outside.keras").write_bytes(keras_file.path.read_bytes())
    with jupyter_server(home, app="lab", base_url="/user/alice/") as srv:
        yield {"srv": srv, "home": home, "keras": keras_file}


@pytest.fixture(scope="module")
def ui(lab):
    """One Chromium page on Lab, recording every request it and its frames make."""
    srv = lab["srv"]
    with sync_api.sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={"width": 1280, "height": 900},
                                      accept_downloads=True)
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        requests: list[str] = []
        context.on("request", lambda request: requests.append(request.url))
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        open_panel(page, f"{srv.url}lab?token={srv.token}")
        yield {"page": page, "context": context, "requests": requests, "errors": errors}
        browser.close()


def open_palette(page) -> None:
    """The command palette, from Lab's View menu (the keys may be in a graph view's
    frame, which keeps those it has the focus for)."""
    page.locator(".lm-MenuBar-itemLabel", has_text="View").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Activate Command Palette").first.click()
    expect(page.locator(".lm-CommandPalette input")).to_be_visible()


def palette(page, label: str) -> None:
    """Run the palette command labelled ``label``, typed as a user does."""
    open_palette(page)
    page.locator(".lm-CommandPalette input").fill(label)
    page.locator(".lm-CommandPalette-item", has_text=label).first.click()


def file_item(page, name: str):
    """The file browser's entry ``name``, by its shown name (where Lab hit-tests it)."""
    return page.locator(f'.jp-DirListing-content .jp-DirListing-itemText span:text-is("{name}")')


def context_menu(page, name: str, label: str) -> None:
    """Right-click ``name`` in the file browser and pick ``label``."""
    page.locator('.jp-SideBar [data-id="filebrowser"]').click()
    item = file_item(page, name)
    item.click()  # selected: the menu's commands act on the selection
    item.click(button="right")
    page.locator(".lm-Menu-item", has_text=label).first.click()


def graph_frame(page):
    """The newest graph view's frame."""
    frame = page.locator('[data-tfaas="graph-view"] iframe').last
    expect(frame).to_be_visible(timeout=60_000)
    return frame.content_frame


def drawn_nodes(frame) -> int:
    """Wait for Netron to draw the graph; the number of nodes it drew (SVG groups)."""
    nodes = frame.locator("#canvas g.node")
    try:
        expect(nodes.first).to_be_attached(timeout=120_000)
    except AssertionError:
        raise AssertionError(f"no graph drawn; the view shows: "
                             f"{frame.locator('body').inner_text()[:500]!r}") from None
    return nodes.count()


def quiet_for_a_screenshot(page) -> None:
    """Answer Lab's news question and let its notifications close: none covers the
    screenshot."""
    news = page.locator(".Toastify__toast", has_text="Jupyter news")
    if news.count():
        news.locator(".jp-toast-button", has_text="No").first.click()
    toasts = page.locator(".Toastify__toast")
    deadline = time.monotonic() + 60
    while toasts.count() and time.monotonic() < deadline:
        # each closed with its close button (they slide: a click event, not a pointer's)
        close = toasts.locator(".jp-Notification-Toast-Close")
        if close.count():
            close.first.dispatch_event("click")
        time.sleep(0.5)
    expect(toasts).to_have_count(0)


def try_json(explorer, request: dict):
    """In the API explorer: open POST /json, Try it out with ``request``, Execute; the
    answer's body once its status shows 200."""
    operation = explorer.locator(".opblock-post", has_text="/json").first
    expect(operation).to_be_visible(timeout=60_000)
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    operation.locator("textarea.body-param__text").fill(json.dumps(request))
    operation.locator(".execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    expect(status).to_have_text("200", timeout=120_000)
    shown = operation.locator(".live-responses-table tbody .response-col_description pre").first
    return json.loads(shown.inner_text())


def test_serve_a_keras_file_from_the_file_browser(lab, ui) -> None:
    page, srv = ui["page"], lab["srv"]
    context_menu(page, "tiny.keras", WORDS["command_serve_file"])
    dialog = page.locator(".jp-Dialog")
    name = dialog.locator("input")
    expect(name).to_have_value("tiny")  # proposed from the file's name
    name.fill("fromdisk")
    dialog.locator("button.jp-mod-accept").click()
    toast = page.locator(".Toastify__toast", has_text="served as fromdisk (version 1)")
    expect(toast.first).to_be_visible(timeout=180_000)
    wait_for_model(page, "fromdisk")  # the panel opens on it
    # the server read the file from its disk: the same bytes, and it predicts
    code, model = srv.json("GET", "tfaas/models/fromdisk")
    assert code == 200 and model["format"] == "keras" and model["versions"] == [1], model
    rows = [[0.5, -1.0, 2.0, 0.25, 1.5, -0.75]]
    code, answer = srv.json("POST", "tfaas/json", {"model": "fromdisk", "values": rows})
    reference = lab["keras"].reference([np.asarray(rows, dtype=np.float32)])[0]
    assert code == 200 and np.allclose(answer, reference, rtol=1e-5), answer


def test_serving_from_the_contents_refuses_escapes_and_non_models(lab) -> None:
    srv = lab["srv"]
    for path, status in (("../outside.keras", 400), ("nowhere.keras", 404),
                         ("notes", 400), (".hidden.keras", 404), ("", 400)):
        code, answer = srv.json("POST", "tfaas/upload/contents", {"path": path, "name": "x"})
        assert code == status, (path, code, answer)
        assert "error" in answer and "Traceback" not in json.dumps(answer)
    assert "x" not in [m["name"] for m in srv.json("GET", "tfaas/models")[1]]


def test_the_graph_page_and_the_model_file(lab) -> None:
    srv = lab["srv"]
    code, page = srv.request("GET", "tfaas/graph/?model=fromdisk")
    html = page.decode()
    assert code == 200, html
    # no build date (so no "please update" lock), no version (so no analytics)
    assert 'name="date"' not in html and 'name="version"' not in html
    # relative to the page, {base_url}tfaas/graph/, as Netron resolves it
    assert '<meta name="file" content="../models/fromdisk/versions/1/file?_xsrf=' in html
    assert '<meta name="identifier" content="model.keras">' in html
    code, body = srv.request("GET", "tfaas/models/fromdisk/versions/1/file")
    assert code == 200 and body == lab["keras"].path.read_bytes()
    code, script = srv.request("GET", "tfaas/graph/index.js")
    assert code == 200 and b"import" in script
    # the viewer's own files are public (as Lab's static files); the page and model not
    with urllib.request.urlopen(f"{srv.url}tfaas/graph/index.js", timeout=60) as plain:
        assert plain.status == 200 and plain.read() == script
    for private in ("tfaas/graph/?model=fromdisk", "tfaas/models/fromdisk/versions/1/file"):
        try:
            with urllib.request.urlopen(f"{srv.url}{private}", timeout=60) as answer:
                assert "/login" in answer.url, (private, answer.url)  # sent to log in
        except urllib.error.HTTPError as refused:
            assert refused.code == 403, (private, refused.code)
    for bad in ("tfaas/graph/..%2F__init__.py", "tfaas/graph/nothing.js"):
        code, answer = srv.request("GET", bad)
        assert code == 404, (bad, answer)
    code, answer = srv.json("GET", "tfaas/graph/?model=nosuchmodel")
    assert code == 404 and "nosuchmodel" in answer["error"]


def test_the_graph_view_draws_the_model_and_asks_nobody_else(lab, ui) -> None:
    page, srv = ui["page"], lab["srv"]
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(srv.url))
    panel = page.locator("#tfaas-sidebar")
    panel.locator('[data-model="fromdisk"]').click()
    start = len(ui["requests"])
    panel.locator('[data-tfaas="graph"]').click()
    frame = graph_frame(page)
    # the tiny model's input, three dense layers, outputs: several nodes drawn
    assert drawn_nodes(frame) >= 2
    expect(frame.locator("body")).not_to_contain_text("Please update")
    if os.environ.get("TFAAS_UPDATE_SCREENSHOT"):
        quiet_for_a_screenshot(page)
        page.locator('[data-tfaas="graph-view"]').last.screenshot(
            path=str(DOCS / "lab-graph-light.png"))
    # the same file before any upload, from the file browser
    context_menu(page, "tiny.keras", WORDS["command_view_graph"])
    assert drawn_nodes(graph_frame(page)) >= 2
    made = ui["requests"][start:]
    assert any("/tfaas/models/fromdisk/versions/1/file" in url for url in made), made
    assert any("/files/tiny.keras" in url for url in made), made
    elsewhere = [url for url in made
                 if not url.startswith((origin, "data:", "blob:")) or OUTSIDE.search(url)]
    assert not elsewhere, elsewhere


def test_every_command_is_in_the_palette_and_runs(lab, ui) -> None:
    page, srv = ui["page"], lab["srv"]
    open_palette(page)
    page.locator(".lm-CommandPalette input").fill("TFaaS")
    items = page.locator(".lm-CommandPalette-item", has_text="TFaaS")
    expect(items.first).to_be_visible()
    labels = [items.nth(i).inner_text() for i in range(items.count())]
    for key in ("command_open", "command_refresh", "command_upload", "command_predict",
                "command_curl", "command_graph", "command_openapi", "command_key",
                "command_export"):
        assert any(WORDS[key] in text for text in labels), (WORDS[key], labels)
    # under the category "TFaaS"
    expect(page.locator(".lm-CommandPalette-header", has_text="TFaaS").first).to_be_attached()
    page.keyboard.press("Escape")

    panel = page.locator("#tfaas-sidebar")
    palette(page, WORDS["command_open"])
    expect(panel).to_be_visible()
    panel.locator('[data-model="fromdisk"]').click()
    panel.locator('[data-tfaas="values"]').fill("[[1, 2, 3, 4, 5, 6]]")
    palette(page, WORDS["command_predict"])
    expect(panel.locator('[data-tfaas="result"] tr[data-label]').first).to_be_visible(
        timeout=120_000)
    palette(page, WORDS["command_curl"])
    expect(panel.locator('[data-tfaas="curl-text"]')).to_contain_text("tfaas/json")
    palette(page, WORDS["command_refresh"])
    with page.expect_file_chooser():
        palette(page, WORDS["command_upload"])
    before = page.locator('[data-tfaas="graph-view"]').count()
    palette(page, WORDS["command_graph"])
    expect(page.locator('[data-tfaas="graph-view"]')).to_have_count(before + 1)
    assert drawn_nodes(graph_frame(page)) >= 2  # (and done taking the focus)
    palette(page, WORDS["command_openapi"])
    expect(page.locator('[data-tfaas="explorer"] .swagger-ui').last).to_be_visible(
        timeout=60_000)
    with page.expect_download(timeout=180_000) as download:
        palette(page, WORDS["command_export"])
    assert download.value.suggested_filename == "tfaas-export.tar.gz"
    palette(page, WORDS["command_key"])
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill("from-palette")
    dialog.locator("button.jp-mod-accept").click()
    secret = page.locator('[data-tfaas="key-secret"]')
    expect(secret).to_have_value(re.compile(r"^tfk_"))
    key = secret.input_value()
    page.locator(".jp-Dialog button.jp-mod-accept").click()
    # the key works, for predictions only
    code, _ = srv.request("POST", "tfaas/json",
                          json.dumps({"model": "fromdisk", "values": [[0] * 6]}).encode(),
                          {"Authorization": f"Bearer {key}"})
    assert code == 200


def test_the_status_bar_item_follows_the_worker_and_its_setting(lab, ui) -> None:
    page = ui["page"]
    item = page.locator('[data-tfaas="status-item"]')
    expect(item).to_be_visible()
    # predictions ran above: the worker is up and the model loaded
    expect(item).to_contain_text(WORDS["worker_running"], timeout=60_000)
    expect(item).to_contain_text("1 loaded")
    # the tooltip names the version the worker holds
    expect(item).to_have_attribute(
        "title", re.compile(rf"\n{WORDS['status_loaded']}: fromdisk v1$"))
    # clicking it opens the panel
    page.locator('.jp-SideBar [data-id="filebrowser"]').click()
    item.click()
    expect(page.locator("#tfaas-sidebar")).to_be_visible()
    # the setting hides it, in Lab's settings editor
    palette(page, "Settings Editor")
    editor = page.locator(".jp-SettingsPanel, .jp-SettingsEditor").first
    expect(editor).to_be_visible(timeout=60_000)
    page.locator(".jp-PluginList-entry", has_text="TFaaS").first.click()
    box = page.get_by_label("Show the status-bar item")
    expect(box).to_be_checked(timeout=60_000)
    box.uncheck()
    expect(item).to_be_hidden(timeout=60_000)
    box.check()
    expect(item).to_be_visible(timeout=60_000)


def copied_curl(page, must_hold: str) -> str:
    """Click Copy curl until the line holds ``must_hold`` (a changed setting reaches the
    panel a moment after the editor saves it); the line, as the clipboard holds it."""
    panel = page.locator("#tfaas-sidebar")
    shown = panel.locator('[data-tfaas="curl-text"]')
    deadline = time.monotonic() + 60
    while True:
        panel.locator('[data-tfaas="curl"]').click()
        expect(shown).to_contain_text("tfaas/json")
        if must_hold in shown.inner_text() or time.monotonic() > deadline:
            break
        time.sleep(1)
    line = shown.inner_text()
    assert must_hold in line, line
    assert page.evaluate("navigator.clipboard.readText()") == line
    return line


def setting_field(page, title: str, kind: str):
    """The settings editor's ``kind`` control (``select``, ``input``) under the field
    titled ``title`` (a heading, not a label, in Lab's form)."""
    heading = page.get_by_role("heading", name=title, exact=True)
    expect(heading).to_be_visible(timeout=60_000)
    return page.locator(".form-group", has=heading).last.locator(kind)


def open_tfaas_settings(page) -> None:
    palette(page, "Settings Editor")
    page.locator(".jp-PluginList-entry", has_text="TFaaS").first.click()


def test_the_curl_style_setting_changes_the_copied_line(lab, ui, tmp_path) -> None:
    """Copy curl in each style of the settings editor's "Curl style", each line run
    by bash against the server: the token from $JUPYTER_TOKEN, or a key from a file."""
    page, srv = ui["page"], lab["srv"]
    rows = [[0.5, -1.0, 2.0, 0.25, 1.5, -0.75], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]
    reference = lab["keras"].reference([np.asarray(rows, dtype=np.float32)])[0]
    palette(page, WORDS["command_open"])
    panel = page.locator("#tfaas-sidebar")
    panel.locator('[data-model="fromdisk"]').click()

    def run(line: str, env: dict[str, str]) -> None:
        values = panel.locator('[data-tfaas="values"]')
        assert json.loads(values.input_value()) == rows  # the form's rows, not an example
        done = subprocess.run(["bash", "-c", line], capture_output=True, text=True,
                              env={"PATH": os.environ["PATH"], **env}, timeout=120)
        assert done.returncode == 0 and np.allclose(json.loads(done.stdout), reference,
                                                    rtol=1e-5), done

    panel.locator('[data-tfaas="values"]').fill(json.dumps(rows))
    line = copied_curl(page, "$JUPYTER_TOKEN")
    assert srv.token not in line
    run(line, {"JUPYTER_TOKEN": srv.token})

    # a key file as %tfaas key create writes it, in a folder whose name needs quoting
    code, created = srv.json("POST", "tfaas/keys", {"name": "curl-style"})
    assert code == 200, created
    key_file = tmp_path / "my keys" / "curl.key"
    key_file.parent.mkdir()
    key_file.write_text(created["key"] + "\n")
    open_tfaas_settings(page)
    style = setting_field(page, "Curl style", "select")
    expect(style.locator("option:checked")).to_have_text("token")
    setting_field(page, "Key file of a copied curl line", "input").fill(str(key_file))
    style.select_option(label="keyfile")
    palette(page, WORDS["command_open"])
    panel.locator('[data-tfaas="values"]').fill(json.dumps(rows))
    line = copied_curl(page, "Bearer $(cat ")
    assert str(key_file.parent.name) in line and "TOKEN" not in line, line
    assert created["key"] not in line and srv.token not in line
    run(line, {"HOME": str(tmp_path)})
    # a revoked key: the same line is refused
    assert srv.json("DELETE", "tfaas/keys/curl-style")[0] == 200
    refused = subprocess.run(["bash", "-c", line + " -o /dev/null -w '%{http_code}'"],
                             capture_output=True, text=True, timeout=120)
    assert refused.stdout in ("401", "403"), refused

    # back to the default for the tests after this one
    open_tfaas_settings(page)
    setting_field(page, "Curl style", "select").select_option(label="token")
    palette(page, WORDS["command_open"])
    copied_curl(page, "$JUPYTER_TOKEN")


def test_try_a_request_in_the_api_explorer(lab, ui) -> None:
    page = ui["page"]
    panel = page.locator("#tfaas-sidebar")
    palette(page, WORDS["command_open"])
    panel.locator('[data-model="fromdisk"]').click()
    panel.locator('[data-tfaas="openapi"]').click()
    explorer = page.locator('[data-tfaas="explorer"]').last
    rows = [[0.5, -1.0, 2.0, 0.25, 1.5, -0.75]]
    answer = try_json(explorer, {"model": "fromdisk", "values": rows})
    reference = lab["keras"].reference([np.asarray(rows, dtype=np.float32)])[0]
    assert np.allclose(answer, reference, rtol=1e-5), answer
    # its curl line names the token's variable, never the token, and runs as it is
    srv = lab["srv"]
    line = explorer.locator('[data-tfaas="explorer-curl"]').inner_text()
    assert srv.token not in line and "$JUPYTER_TOKEN" in line, line
    done = subprocess.run(["bash", "-c", line + " -sS"], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "JUPYTER_TOKEN": srv.token},
                          timeout=120)
    assert done.returncode == 0 and np.allclose(json.loads(done.stdout), reference,
                                                rtol=1e-5), done
    if os.environ.get("TFAAS_UPDATE_SCREENSHOT"):
        explorer.screenshot(path=str(DOCS / "lab-explorer-light.png"))



def test_the_explorer_page_of_the_tfaas_page_and_the_widget(lab, ui) -> None:
    """The tfaas/ page's and the notebook widget's OpenAPI links open the explorer page
    (the labextension's Swagger UI, served under the base URL): "Try it out" answers
    200 with the model's numbers, and the page asks no other origin."""
    srv = lab["srv"]
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(srv.url))
    tab = ui["context"].new_page()
    made: list[str] = []
    tab.on("request", lambda request: made.append(request.url))
    rows = [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0.5, -1.0, 2.0, 0.25, 1.5, -0.75]]
    reference = lab["keras"].reference([np.asarray(rows, dtype=np.float32)])[0]
    try:
        tab.goto(f"{srv.url}tfaas/")
        link = tab.locator('tr', has_text="fromdisk").locator('[data-tfaas="openapi"]')
        link.click()
        expect(tab).to_have_url(re.compile(r"/user/alice/tfaas/explorer/\?model=fromdisk$"))
        explorer = tab.locator('[data-tfaas="explorer"]')
        answer = try_json(explorer, {"model": "fromdisk", "values": rows})
        assert np.allclose(answer, reference, rtol=1e-5), answer

        # the widget's link, as %tfaas browser draws it for the selected model
        html = model_page_link_html("openapi", f"{srv.url}tfaas/", "fromdisk")
        href = re.search(r'href="([^"]+)"', html)[1].replace("&amp;", "&")
        assert href == "/user/alice/tfaas/explorer/?model=fromdisk", html
        tab.goto(origin + href)
        answer = try_json(tab.locator('[data-tfaas="explorer"]'), {"model": "fromdisk",
                                                                   "values": rows[:1]})
        assert np.allclose(answer, reference[:1], rtol=1e-5), answer
        # the whole API's explorer, from the page's "How to call"
        tab.goto(f"{srv.url}tfaas/")
        tab.locator('p [data-tfaas="openapi"]').click()
        expect(tab.locator(".opblock-summary-path", has_text="/upload").first).to_be_visible(
            timeout=60_000)
    finally:
        tab.close()
    assert made and all(url.startswith(origin + "/") for url in made), [
        url for url in made if not url.startswith(origin + "/")]
    code, body = srv.request("GET", "tfaas/explorer/?model=no-such-model")
    assert code == 404 and "no-such-model" in json.loads(body)["error"], (code, body)


def test_screenshots_in_the_dark_theme(lab, ui) -> None:
    page = ui["page"]
    palette(page, WORDS["command_open"])
    panel = page.locator("#tfaas-sidebar")
    # the panel and its new controls fit Lab's default sidebar width
    width = panel.evaluate("node => node.getBoundingClientRect().width")
    for hook in ("graph", "openapi"):
        button = panel.locator(f'[data-tfaas="{hook}"]')
        expect(button).to_be_visible()
        right = button.evaluate("node => node.getBoundingClientRect().right")
        left = panel.evaluate("node => node.getBoundingClientRect().left")
        assert right - left <= width + 0.5, (hook, right, left, width)
    update = os.environ.get("TFAAS_UPDATE_SCREENSHOT")
    if update:
        panel.screenshot(path=str(DOCS / "lab-panel-light.png"))
    use_dark_theme(page)
    item = page.locator('[data-tfaas="status-item"]')
    color = item.evaluate("node => getComputedStyle(node).color")
    channels = [int(v) for v in re.findall(r"\d+", color)[:3]]
    assert sum(channels) > 3 * 128, color  # light text on the dark status bar
    if update:
        panel.screenshot(path=str(DOCS / "lab-panel-dark.png"))
    # the explorer's tab (opened above) in the dark theme: its words stay readable
    page.locator(".lm-TabBar-tab", has_text=f"{WORDS['openapi']}: fromdisk").last.click()
    explorer = page.locator('[data-tfaas="explorer"]').last
    for words in (explorer.locator(".opblock-summary-path").first,
                  explorer.locator(".opblock-section-header h4").first):
        expect(words).to_be_visible()
        color = words.evaluate("node => getComputedStyle(node).color")
        assert sum(int(v) for v in re.findall(r"\d+", color)[:3]) > 3 * 128, color
    if update:
        explorer.screenshot(path=str(DOCS / "lab-explorer-dark.png"))
    assert not ui["errors"], ui["errors"]


#: JavaScript: the computed colour a ``--jp-*`` variable gives in this document.
RESOLVE = """name => {
  const probe = document.createElement('div');
  probe.style.color = `var(${name})`;
  document.body.appendChild(probe);
  const colour = getComputedStyle(probe).color;
  probe.remove();
  return colour;
}"""
#: the graph view's parts: (selector, computed property, the --jp-* variable it shows)
GRAPH_COLOURS = (
    ("body", "background-color", "--jp-layout-color0"),
    (".graph-item-input path", "fill", "--jp-layout-color2"),
    (".node-item-type-layer path", "fill", "--jp-brand-color1"),
    (".node-item-type text", "fill", "--jp-ui-inverse-font-color1"),
    (".edge-path", "stroke", "--jp-ui-font-color2"),
)
#: the explorer page's parts, likewise
EXPLORER_COLOURS = (
    ("body", "background-color", "--jp-layout-color0"),
    (".opblock-summary-path", "color", "--jp-ui-font-color1"),
    (".info .title", "color", "--jp-ui-font-color1"),
)


#: JavaScript: the computed colours of ``parts`` in a page (its root element) or in a
#: frame's page (its iframe element: read from Lab's side, as Netron's page refuses the
#: eval a browser driver runs in it)
COMPUTED = """(root, parts) => {
  const doc = root.contentDocument || root.ownerDocument;
  return parts.map(([selector, prop]) => {
    const node = doc.querySelector(selector);
    return node && doc.defaultView.getComputedStyle(node).getPropertyValue(prop);
  });
}"""


def shown_colours(root, parts) -> dict[str, tuple[str, str]]:
    """Each part's computed colour under ``root`` (a page's ``html`` or an iframe), by
    its selector, with the variable it should show."""
    colours = root.evaluate(COMPUTED, [[selector, prop] for selector, prop, _ in parts])
    shown = {selector: (colour, variable)
             for (selector, _, variable), colour in zip(parts, colours, strict=True)}
    assert all(colour for colour, _ in shown.values()), shown  # every part is there
    return shown


def assert_lab_colours(page, shown: dict[str, tuple[str, str]]) -> None:
    """Every shown colour is what its variable gives in Lab's own page (its theme)."""
    expected = {selector: page.evaluate(RESOLVE, variable)
                for selector, (_, variable) in shown.items()}
    assert {s: c for s, (c, _) in shown.items()} == expected, shown


def explorer_page_colours(context, url: str, page) -> dict[str, tuple[str, str]]:
    """The explorer page's colours, once the page shows Lab's theme of ``page`` (the
    theme setting reaches the server a moment after Lab switches)."""
    tab = context.new_page()
    try:
        background = page.evaluate(RESOLVE, "--jp-layout-color0")
        deadline = time.monotonic() + 60
        while True:
            tab.goto(url)
            expect(tab.locator(".opblock-summary-path").first).to_be_visible(timeout=60_000)
            shown = shown_colours(tab.locator("html"), EXPLORER_COLOURS)
            if shown["body"][0] == background or time.monotonic() > deadline:
                return shown
            time.sleep(1)
    finally:
        tab.close()


def use_light_theme(page) -> None:
    """Switch Lab back to its light theme from the command palette."""
    palette(page, "Use Theme: JupyterLab Light")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'",
                           timeout=60_000)


def test_the_graph_and_the_explorer_page_take_labs_theme(lab, ui) -> None:
    """The graph view and the explorer page outside Lab show the colours of Lab's
    theme variables, dark (the theme the test before left) and light: the graph's
    background, boxes, words and edges, the explorer page's background and words."""
    page, srv, context = ui["page"], lab["srv"], ui["context"]
    assert page.evaluate("document.body.dataset.jpThemeLight") == "false"
    explorer_url = f"{srv.url}tfaas/explorer/?model=fromdisk"
    palette(page, WORDS["command_open"])
    panel = page.locator("#tfaas-sidebar")
    panel.locator('[data-model="fromdisk"]').click()
    panel.locator('[data-tfaas="graph"]').click()
    view = page.locator('[data-tfaas="graph-view"] iframe').last
    expect(view).to_have_attribute("src", re.compile(r"theme=JupyterLab(%20|\+)Dark"))
    assert drawn_nodes(graph_frame(page)) >= 2
    dark = shown_colours(view, GRAPH_COLOURS)
    assert_lab_colours(page, dark)
    if os.environ.get("TFAAS_UPDATE_SCREENSHOT"):
        quiet_for_a_screenshot(page)
        page.locator('[data-tfaas="graph-view"]').last.screenshot(
            path=str(DOCS / "lab-graph-dark.png"))
    dark_explorer = explorer_page_colours(context, explorer_url, page)
    assert_lab_colours(page, dark_explorer)

    use_light_theme(page)
    # the open graph view follows: redrawn in the light theme
    expect(view).to_have_attribute("src", re.compile(r"theme=JupyterLab(%20|\+)Light"))
    frame = graph_frame(page)  # once the new page is there, drawn again
    expect(frame.locator('link[data-tfaas="lab-theme"][href*="theme-light"]')).to_be_attached(
        timeout=60_000)
    assert drawn_nodes(frame) >= 2
    light = shown_colours(view, GRAPH_COLOURS)
    assert_lab_colours(page, light)
    light_explorer = explorer_page_colours(context, explorer_url, page)
    assert_lab_colours(page, light_explorer)
    # two different themes, so the comparisons above could fail
    assert light["body"][0] != dark["body"][0]
    assert light_explorer[".info .title"][0] != dark_explorer[".info .title"][0]
    assert not ui["errors"], ui["errors"]
