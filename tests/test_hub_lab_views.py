"""The Lab front end under a real JupyterHub, logged in through the hub's form as a user
is, one hub and one browser for each of its key steps: the panel opens, the status-bar
item shows the worker, a palette command runs, the graph view draws the model in Lab's
theme (the viewer, the theme and the model file come through the hub's proxy under
/user/alice/, no request leaves it), and the API explorer's "Try it out" authenticates
with the hub's login cookie (Lab has no token there) and Jupyter's XSRF header."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers import seed_upload_body
from test_hub import hub_login, jupyterhub
from test_lab import open_panel, seed_reference, shown_outputs
from test_lab_views import (
    GRAPH_COLOURS,
    assert_lab_colours,
    drawn_nodes,
    graph_frame,
    launch,
    palette,
    shown_colours,
    try_json,
)

from tfaas_jupyter.client.vocabulary import WORDS

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("jupyterhub")
expect = sync_api.expect
pytestmark = pytest.mark.timeout(900)


def test_the_lab_front_end_under_a_hub(tmp_path: Path, seed_dir: Path) -> None:
    with jupyterhub(tmp_path / "hub") as hub:
        hub.start_server("alice")
        alice = hub.user_token("alice")
        body, ctype = seed_upload_body(seed_dir)
        code, raw, _ = hub.request("POST", "user/alice/tfaas/upload", token=alice, body=body,
                                   headers={"Content-Type": ctype}, timeout=300)
        assert code == 200, (raw, hub.log())
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(hub.url))
        with sync_api.sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            hub_login(page, hub, "alice")
            open_panel(page, hub.url + "user/alice/lab")
            panel = page.locator("#tfaas-sidebar")
            item = page.locator('[data-tfaas="status-item"]')
            expect(item).to_be_visible(timeout=60_000)

            # a palette command: predict with the selected model, the talk's row
            talk = json.loads((seed_dir / "input.json").read_text())["values"]
            panel.locator('[data-model="vk"]').click()
            panel.locator('[data-tfaas="values"]').fill(json.dumps(talk))
            palette(page, WORDS["command_predict"])
            expect(panel.locator('[data-tfaas="result"] tr[data-label]').first).to_be_visible(
                timeout=120_000)
            shown = shown_outputs(page)
            assert [value for _, value, _ in shown] == pytest.approx(
                [seed_reference(talk)], rel=1e-5), shown
            # the status-bar item: the worker the prediction started, its model loaded
            expect(item).to_contain_text(WORDS["worker_running"], timeout=60_000)
            expect(item).to_contain_text("1 loaded")

            # the graph: drawn from the model file, all through the hub's proxy
            start = len(requests)
            panel.locator('[data-tfaas="graph"]').click()
            assert drawn_nodes(graph_frame(page)) >= 2
            # in Lab's theme (the parts any graph has: its page, words, edges)
            parts = [p for p in GRAPH_COLOURS if p[0] in ("body", ".node-item-type text",
                                                           ".edge-path")]
            view = page.locator('[data-tfaas="graph-view"] iframe').last
            assert_lab_colours(page, shown_colours(view, parts))
            made = requests[start:]
            assert any("/user/alice/tfaas/models/vk/versions/1/file" in u for u in made), made
            assert any("/user/alice/lab/api/themes/" in u for u in made), made
            elsewhere = [u for u in made if not u.startswith((origin, "data:", "blob:"))]
            assert not elsewhere, elsewhere

            # the explorer: a real request, with the hub's login
            panel.locator('[data-tfaas="openapi"]').click()
            explorer = page.locator('[data-tfaas="explorer"]').last
            row = [round(v * 0.8 + 0.01, 6) for v in talk]
            answer = try_json(explorer, {"model": "vk", "values": row})
            assert answer == pytest.approx([seed_reference(row)], rel=1e-5), answer
            assert not errors, errors
            browser.close()
