"""The graph view and the API explorer under a real JupyterHub, logged in through the
hub's form as a user is: the viewer and the model file come through the hub's proxy
under /user/alice/, no request leaves it, and "Try it out" authenticates with the
hub's login cookie (Lab has no token there) and Jupyter's XSRF header."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers import seed_upload_body
from test_hub import hub_login, jupyterhub
from test_lab import open_panel, seed_reference
from test_lab_views import drawn_nodes, graph_frame, launch, try_json

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
            hub_login(page, hub, "alice")
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
            talk = json.loads((seed_dir / "input.json").read_text())["values"]
            row = [round(v * 0.8 + 0.01, 6) for v in talk]
            answer = try_json(explorer, {"model": "vk", "values": row})
            assert answer == pytest.approx([seed_reference(row)], rel=1e-5), answer
            browser.close()
