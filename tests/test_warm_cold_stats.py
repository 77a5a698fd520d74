"""Statistics a user can trust: a request that waited for a cold start (the worker's
start, a model's load) is counted and timed apart from warm calls, in /status, the
metrics and every client's summary (``%tfaas status``, the widget's strip)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import TFaaSCaller, metric_value, scrape

from tfaas_jupyter.client.present import format_status, model_status_line, status_strip
from tfaas_jupyter.server.stats import Stats

pytestmark = pytest.mark.timeout(600)


def test_cold_requests_stay_out_of_the_warm_figures() -> None:
    stats = Stats()
    stats.record("POST", "json", 200, 6.5, "vk", 1, cold=True)
    for seconds in (0.002, 0.004, 0.003):
        stats.record("POST", "json", 200, seconds, "vk", 1)
    doc = stats.models["vk"].as_dict()
    assert doc["requests"] == 4 and doc["cold_starts"] == 1
    assert doc["mean_latency_ms"] == pytest.approx(3.0)  # (2 + 4 + 3) / 3, no 6.5 s
    assert doc["p99_latency_ms"] == pytest.approx(5.0)  # the bucket holding 4 ms
    assert doc["cold_start_mean_ms"] == pytest.approx(6500.0)
    assert doc["cold_start_max_ms"] == pytest.approx(6500.0)
    line = model_status_line("vk", doc)
    assert line == ("vk: 4 requests, 4 rows, 0 errors; warm mean 3.00 ms, p99 ≤ 5.00 ms; "
                    "1 cold start, 6.50 s")
    strip = status_strip({"models": {"vk": doc}}, None)
    assert strip["p99"] == "≤ 5.00 ms" and strip["cold"] == "1, mean 6.50 s"
    stats.record("POST", "json", 200, 0.09, "vk", 1)  # the 0.1 bucket: 100 ms, no point
    assert status_strip({"models": {"vk": stats.models["vk"].as_dict()}}, None)["p99"] == \
        "≤ 100 ms"
    assert model_status_line("one", {"requests": 1, "rows": 1, "errors": 1}) == \
        "one: 1 request, 1 row, 1 error"


def test_only_cold_requests_have_no_warm_mean() -> None:
    stats = Stats()
    stats.record("POST", "json", 200, 2.0, "vk", 1, cold=True)
    stats.record("POST", "json", 200, 4.0, "vk", 1, cold=True)
    doc = stats.models["vk"].as_dict()
    assert doc["mean_latency_ms"] is None and doc["p99_latency_ms"] is None
    assert model_status_line("vk", doc).endswith("0 errors; 2 cold starts, mean 3.00 s")
    assert status_strip({"models": {"vk": doc}}, None)["p99"] == "–"


async def test_a_fresh_server_reports_its_cold_start_apart(
    tfaas: TFaaSCaller, seed_dir: Path
) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    body = (seed_dir / "input.json").read_bytes()
    for _ in range(5):
        assert (await tfaas.call("POST", "json", body)).code == 200
    status = (await tfaas.call("GET", "status")).json()
    vk = status["models"]["vk"]
    # the upload loaded the model (the worker's start and the load): its only cold start
    assert vk["requests"] == 6 and vk["cold_starts"] == 1
    assert vk["cold_start_mean_ms"] > vk["mean_latency_ms"]
    assert vk["mean_latency_ms"] <= vk["p99_latency_ms"]
    assert status["errors"] == 0
    text = format_status(status, "here")
    assert "vk: 6 requests" in text and "1 cold start," in text and "warm mean" in text

    samples = scrape((await tfaas.call("GET", "metrics")).body.decode())
    assert metric_value(samples, "tfaas_model_cold_starts_total", model="vk") == 1
    assert metric_value(samples, "tfaas_model_request_duration_seconds_count", model="vk") == 5
    seconds = metric_value(samples, "tfaas_model_cold_start_seconds_total", model="vk")
    assert seconds == pytest.approx(vk["cold_start_mean_ms"] / 1000, rel=1e-6)
    assert json.loads(body)["model"] == "vk"
