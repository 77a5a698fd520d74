"""The graph view and the API explorer under a real JupyterHub, logged in through the
hub's form as a user is: the viewer and the model file come through the hub's proxy
under /user/alice/, no request leaves it, and "Try it out" authenticates with the
hub's login cookie (Lab has no token there) and Jupyter's XSRF header."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import seed_upload_body
from test_hub import PASSWORD, jupyterhub
from test_lab import open_panel, seed_reference
from test_lab_views import drawn_nodes, graph_frame, launch

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("jupyterhub")
expect = sync_api.expect
pytestmark = pytest.mark.timeout(900)


def test_graph_and_explorer_under_a_hub(tmp_path: Path, seed_dir: Path) -> None:
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
            page.goto(hub.url + "hub/login", timeout=120_000)
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_load_state()
            open_panel(page, hub.url + "user/alice/lab")
            panel = page.locator("#tfaas-sidebar")
            panel.locator('[data-model="vk"]').click()

            # the graph: drawn from the model file, all through the hub's proxy
            start = len(requests)
            panel.locator('[data-tfaas="graph"]').click()
            assert drawn_nodes(graph_frame(page)) >= 2
            made = requests[start:]
            assert any("/user/alice/tfaas/models/vk/versions/1/file" in u for u in made), made
            elsewhere = [u for u in made if not u.startswith((origin, "data:", "blob:"))]
            assert not elsewhere, elsewhere

            # the explorer: a real request, with the hub's login
            panel.locator('[data-tfaas="openapi"]').click()
            explorer = page.locator('[data-tfaas="explorer"]').last
            operation = explorer.locator(".opblock-post", has_text="/json").first
            expect(operation).to_be_visible(timeout=60_000)
            operation.locator(".opblock-summary").click()
            operation.locator(".try-out__btn").click()
            talk = json.loads((seed_dir / "input.json").read_text())["values"]
            row = [round(v * 0.8 + 0.01, 6) for v in talk]
            operation.locator("textarea.body-param__text").fill(
                json.dumps({"model": "vk", "values": row}))
            operation.locator(".execute").click()
            status = operation.locator(".live-responses-table .response-col_status").first
            expect(status).to_have_text("200", timeout=120_000)
            shown = operation.locator(".live-responses-table .response-col_description pre")
            answer = json.loads(shown.first.inner_text())
            assert answer == pytest.approx([seed_reference(row)], rel=1e-5), answer
            browser.close()
