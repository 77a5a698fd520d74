"""The panel shows what the batcher did for the selected model: per version, the rows of
each worker call and each request's wait in the queue, as histograms whose counts are
the server's ``/tfaas/status`` numbers and the requests the test sent; and the status
strip names each loaded version with its number. In a real ``jupyter lab`` through
Debian's Chromium, at Lab's default sidebar width."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import seed_predict, seed_upload_body
from servers import jupyter_server
from test_lab import launch, open_panel, sync_api, wait_for_model

from tfaas_jupyter.client.vocabulary import word

pytestmark = pytest.mark.timeout(900)

#: Rows of each request sent at once to vk's latest version (version 2).
ROWS = [1, 2, 3, 1, 4, 2, 1, 5, 1, 2, 3, 1]

#: What the panel shows of one version's histograms: {kind: [(upper bound, count)]}.
SHOWN = """
(section, version) => {
  const block = section.querySelector(`[data-version="${version}"]`);
  if (!block) return null;
  const shown = {text: block.querySelector('.jp-tfaas-muted').textContent};
  for (const table of block.querySelectorAll('[data-histogram]')) {
    shown[table.dataset.histogram] = [...table.querySelectorAll('tr[data-le]')].map(
      tr => [tr.dataset.le, Number(tr.querySelector('[data-count]').dataset.count)]);
  }
  return shown;
}
"""


def cumulative(shown: list[list]) -> dict[str, int]:
    """The panel's per-bucket counts summed up to each bound, as the status writes them."""
    total, out = 0, {}
    for le, count in shown:
        total += count
        out[le] = total
    return out


def test_the_panel_shows_the_batching_histograms_of_the_selected_model(
    tmp_path: Path, seed_dir: Path
) -> None:
    talk = json.loads((seed_dir / "input.json").read_text())["values"]
    with jupyter_server(tmp_path / "lab", app="lab") as srv:
        body, ctype = seed_upload_body(seed_dir)
        for _ in range(2):  # vk versions 1 and 2
            code, answer = srv.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
            assert code == 200, answer
        code, _ = srv.json("POST", "tfaas/json", {"model": "vk", "version": 1, "values": talk})
        assert code == 200  # version 1 loaded too: the strip must tell the two apart

        def send(n: int) -> int:
            rows = [[v + 0.01 * i for v in talk] for i in range(n)]
            code, answer = srv.json("POST", "tfaas/json", {"model": "vk", "values": rows})
            assert code == 200, answer
            np.testing.assert_allclose(np.ravel(answer), np.ravel(seed_predict(rows)),
                                       rtol=1e-5)
            return n

        with ThreadPoolExecutor(len(ROWS)) as pool:
            assert sum(pool.map(send, ROWS)) == sum(ROWS)
        code, status = srv.json("GET", "tfaas/status")
        assert code == 200
        doc = status["batching"]["models"]["vk/2"]
        sizes, waits = doc["batch_size_histogram"], doc["queue_wait_seconds_histogram"]
        # the server counted what was sent: each request waited once, every row went out
        assert (doc["requests"], waits["count"], sizes["sum"]) == (len(ROWS), len(ROWS),
                                                                   sum(ROWS))
        assert sizes["count"] == doc["worker_calls"] <= len(ROWS)

        with sync_api.sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            open_panel(page, f"{srv.url}lab?token={srv.token}")
            wait_for_model(page, "vk")
            panel = page.locator("#tfaas-sidebar")
            panel.locator('[data-model="vk"]').click()
            panel.locator('[data-tfaas="refresh"]').click()
            section = panel.locator('[data-tfaas="batching"]')
            section.locator('[data-version="2"] [data-histogram="waits"] tr').first.wait_for(
                timeout=60_000)
            sync_api.expect(section.locator("h3")).to_have_text(
                word("batching_heading", name="vk"))
            shown = section.element_handle().evaluate(SHOWN, 2)

            # the queue waits: one per request sent, bucket by bucket the server's
            assert sum(n for _, n in shown["waits"]) == len(ROWS)
            server_waits = dict((le, n) for le, n in waits["buckets"])
            for le, total in cumulative(shown["waits"]).items():
                assert server_waits[le] == total, (le, shown["waits"], waits)
            # the batch sizes: one per worker call, bucket by bucket the server's
            assert sum(n for _, n in shown["sizes"]) == doc["worker_calls"]
            server_sizes = dict((le, n) for le, n in sizes["buckets"])
            for le, total in cumulative(shown["sizes"]).items():
                assert server_sizes[le] == total, (le, shown["sizes"], sizes)
            # every bucket shown holds calls; together their bounds hold every row sent
            assert all(n > 0 for _, n in shown["sizes"] + shown["waits"])
            assert sum(float(le) * n for le, n in shown["sizes"]) >= sum(ROWS)
            assert shown["text"] == word("batching_version", version=2, requests=len(ROWS),
                                         calls=doc["worker_calls"], rows=sum(ROWS))
            # version 1 has its own block: its one request of one row
            one = section.element_handle().evaluate(SHOWN, 1)
            assert one["sizes"] == [["1.0", 1]] and sum(n for _, n in one["waits"]) == 1

            # the strip names each loaded version
            loaded = panel.locator('[data-status="loaded"]').inner_text()
            assert sorted(loaded.split(", ")) == [
                word("status_loaded_version", name="vk", version=v) for v in (1, 2)]

            # it fits Lab's default sidebar width: nothing sticks out or scrolls sideways
            fit = panel.evaluate("""root => {
                const box = root.getBoundingClientRect();
                const out = [...root.querySelectorAll('[data-tfaas=batching] *')].filter(e => {
                    const r = e.getBoundingClientRect();
                    return (r.width || r.height) && (r.left < box.left - 0.5 ||
                                                     r.right > box.right + 0.5);
                }).map(e => e.outerHTML.slice(0, 80));
                return {out, scrolls: root.scrollWidth > root.clientWidth + 1};
            }""")
            assert not fit["out"] and not fit["scrolls"], fit
            section.screenshot(path=str(tmp_path / "panel-batching.png"))
            assert not errors, errors
            browser.close()
