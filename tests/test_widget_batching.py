"""The notebook widget (``%tfaas browser``) shows the selected model's batching as the
panel does: per version, the rows of each worker call and each request's queue wait,
bucket by bucket the server's ``/tfaas/status`` counts and the requests sent; its
bucket labels are the panel's (batching.spec.ts checks the same histograms)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from helpers import TFaaSCaller, in_thread

from tfaas_jupyter.client.api import TFaaSClient
from tfaas_jupyter.client.present import bucket_counts, rows_label, wait_label
from tfaas_jupyter.client.vocabulary import word
from tfaas_jupyter.client.widgets import ModelBrowser

#: Rows of each request sent at once.
ROWS = [1, 2, 3, 1, 4, 2, 1, 5]


def test_bucket_labels_are_the_panels() -> None:
    sizes = {"buckets": [["1.0", 1], ["2.0", 1], ["4.0", 2], ["8.0", 3], ["+Inf", 3]]}
    assert bucket_counts(sizes, rows_label) == [("1.0", "1", 1), ("4.0", "3–4", 1),
                                                 ("8.0", "5–8", 1)]
    waits = {"buckets": [["0.0", 2], ["0.001", 5], ["1.0", 5], ["+Inf", 6]]}
    assert bucket_counts(waits, wait_label) == [("0.0", "0", 2), ("0.001", "≤ 1.00 ms", 3),
                                                ("+Inf", "> 1.00 s", 1)]
    assert bucket_counts(None, rows_label) == [] and rows_label(4096.0, float("inf")) == \
        "> 4096"


def shown_histograms(html: str, version: int) -> dict[str, list[tuple[str, int]]]:
    block = html.split(f'data-version="{version}"', 1)[1].split("jp-tfaas-batching-version")[0]
    return {kind: [(le, int(n)) for le, n in re.findall(
                r'<tr data-le="([^"]+)".*?data-count="(\d+)"', table)]
            for kind, table in re.findall(r'data-histogram="(\w+)">(.*?)</table>', block)}


async def test_the_widget_shows_the_selected_models_batching(
        tfaas: TFaaSCaller, client: TFaaSClient, seed_dir: Path) -> None:
    await tfaas.uploaded(directory=seed_dir, name="vk")
    talk = [0.25] * 42
    replies = await asyncio.gather(*(tfaas.predict({"model": "vk", "values": [talk] * n})
                                     for n in ROWS))
    assert all(r.code == 200 for r in replies), [r.body for r in replies]
    browser = await in_thread(ModelBrowser, client)
    try:
        assert browser.selected == "vk"
        status = await in_thread(browser.refresh_status)
        doc = status["batching"]["models"]["vk/1"]
        html = browser.batching_html.value
        assert word("batching_heading", name="vk") in html
        shown = shown_histograms(html, 1)
        # one queue wait per request sent; one batch size per worker call
        assert sum(n for _, n in shown["waits"]) == len(ROWS)
        assert sum(n for _, n in shown["sizes"]) == doc["worker_calls"]
        for kind, hist in (("sizes", doc["batch_size_histogram"]),
                           ("waits", doc["queue_wait_seconds_histogram"])):
            server = dict((le, n) for le, n in hist["buckets"])
            total = 0
            for le, n in shown[kind]:
                total += n
                assert server[le] == total, (kind, shown[kind], hist)
        assert sum(float(le) * n for le, n in shown["sizes"]) >= sum(ROWS)
        assert word("batching_version", version=1, requests=len(ROWS),
                    calls=doc["worker_calls"], rows=sum(ROWS)) in html
    finally:
        browser.close()
