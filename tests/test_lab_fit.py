"""The side panel fits at JupyterLab's default sidebar width, at 100% and at 200% zoom
(the same screen, half as many CSS pixels, twice the device pixels): every control lies
inside the panel's box, no button's label wraps or is clipped, every placeholder is
readable whole, and the delete question says "version" or "versions" as it should.
Measured in Debian's Chromium (Playwright), on a real ``jupyter lab``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers import seed_upload_body
from servers import jupyter_server
from test_lab import launch, open_panel, sync_api, wait_for_model

from tfaas_jupyter.client import TFaaSClient
from tfaas_jupyter.client.vocabulary import word

pytestmark = pytest.mark.timeout(900)

#: (name, viewport in CSS pixels, device pixels per CSS pixel): a 1280x800 screen at
#: 100% and at 200% zoom
ZOOMS = [("100%", {"width": 1280, "height": 800}, 1),
         ("200%", {"width": 640, "height": 400}, 2)]

#: What the panel shows a person to read or press, and what each must satisfy.
MEASURE = """
(root) => {
  const box = root.getBoundingClientRect();
  const problems = [];
  const name = el => `${el.tagName.toLowerCase()}[data-tfaas=${el.dataset.tfaas || ''}]` +
    ` "${(el.textContent || el.placeholder || '').trim().slice(0, 30)}"`;
  const controls = root.querySelectorAll(
    'button, input:not([type=file]), textarea, a.jp-tfaas-button, .jp-tfaas-badge, ' +
    '.jp-tfaas-model-name, .jp-tfaas-status-cell, .jp-tfaas-heading, .jp-tfaas-title');
  let measured = 0;
  for (const el of controls) {
    const r = el.getBoundingClientRect();
    if (!r.width && !r.height) continue;  // not shown
    measured++;
    if (r.left < box.left - 0.5 || r.right > box.right + 0.5) {
      problems.push(`${name(el)} outside the panel: ${r.left}..${r.right} not in ` +
                    `${box.left}..${box.right}`);
    }
    if (el.matches('button, a.jp-tfaas-button, .jp-tfaas-badge')) {
      const range = document.createRange();
      range.selectNodeContents(el);
      const lines = new Set([...range.getClientRects()].map(q => Math.round(q.top)));
      if (lines.size > 1) problems.push(`${name(el)} wraps onto ${lines.size} lines`);
      if (el.scrollWidth > el.clientWidth + 1) problems.push(`${name(el)} is clipped`);
    }
    if (el.placeholder) {
      const style = getComputedStyle(el);
      const ctx = document.createElement('canvas').getContext('2d');
      ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
      const room = el.clientWidth - parseFloat(style.paddingLeft) -
        parseFloat(style.paddingRight);
      const need = ctx.measureText(el.placeholder).width;
      if (need > room) problems.push(`${name(el)}: placeholder needs ${need}px, has ${room}px`);
    }
  }
  return {problems, measured, width: box.width};
}
"""


def test_the_panel_fits_at_the_default_width_and_200_percent_zoom(
    tmp_path: Path, seed_dir: Path, built: dict
) -> None:
    with jupyter_server(tmp_path / "lab", app="lab") as srv:
        body, ctype = seed_upload_body(seed_dir)
        for _ in range(2):  # vk with versions 1 and 2
            code, answer = srv.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
            assert code == 200, answer
        with TFaaSClient(srv.url + "tfaas", token=srv.token, timeout=240) as client:
            asyncio.run(asyncio.to_thread(client.upload, "jets_savedmodel",
                                          built["keras_export"].path))
        with sync_api.sync_playwright() as pw:
            browser = launch(pw)
            for zoom, viewport, scale in ZOOMS:
                context = browser.new_context(viewport=viewport, device_scale_factor=scale)
                page = context.new_page()
                open_panel(page, f"{srv.url}lab?token={srv.token}")
                wait_for_model(page, "jets_savedmodel")
                wait_for_model(page, "vk")
                panel = page.locator("#tfaas-sidebar")
                sync_api.expect(panel.locator('[data-status="worker"]')).not_to_have_text("…")
                panel.locator('[data-model="jets_savedmodel"]').click()
                panel.locator('[data-tfaas="tryit"]').wait_for(state="visible")
                panel.screenshot(path=str(tmp_path / f"panel-{zoom}.png"))
                found = panel.evaluate(MEASURE)
                assert found["measured"] >= 20, found
                assert not found["problems"], (zoom, found)

                # the delete question: "version 1" for one, "versions 1, 2" for two
                for model, said in (("jets_savedmodel", "(version 1)"),
                                    ("vk", "(versions 1, 2)")):
                    panel.locator(f'[data-model="{model}"] [data-tfaas="delete"]').click()
                    dialog = page.locator(".jp-Dialog")
                    sync_api.expect(dialog).to_contain_text(
                        word("delete_ask", what=f"{model} {said}"))
                    dialog.get_by_role("button", name=word("cancel")).click()
                    dialog.wait_for(state="detached")
                context.close()
            browser.close()
