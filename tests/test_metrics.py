"""Prometheus metrics at {base_url}tfaas/metrics: format 0.0.4, behind auth, counting
requests, errors, latency, batch sizes per model and models loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import TFaaSCaller, metric_families, metric_value, scrape

from tfaas_jupyter.server.metrics import render
from tfaas_jupyter.server.stats import Stats

pytestmark = pytest.mark.timeout(600)

#: What scrapers rely on: every family's name, type and labels (the page's contract).
FAMILIES = {
    "tfaas_uptime_seconds": ("gauge", []),
    "tfaas_requests": ("counter", ["code", "endpoint", "method"]),
    "tfaas_errors": ("counter", []),
    "tfaas_busy": ("counter", []),
    "tfaas_in_flight_requests": ("gauge", []),
    "tfaas_request_duration_seconds": ("histogram", ["endpoint"]),
    "tfaas_model_requests": ("counter", ["model"]),
    "tfaas_model_errors": ("counter", ["model"]),
    "tfaas_model_rows": ("counter", ["model"]),
    "tfaas_model_request_duration_seconds": ("histogram", ["model"]),
    "tfaas_model_cold_starts": ("counter", ["model"]),
    "tfaas_model_cold_start_seconds": ("counter", ["model"]),
    "tfaas_worker_calls": ("counter", ["model", "version"]),
    "tfaas_batch_rows": ("counter", ["model", "version"]),
    "tfaas_batch_requests_per_call": ("histogram", ["model", "version"]),
    "tfaas_models_loaded": ("gauge", []),
    "tfaas_model_cache_capacity": ("gauge", []),
    "tfaas_models_on_disk": ("gauge", []),
    "tfaas_worker_up": ("gauge", []),
    "tfaas_worker_restarts": ("counter", []),
    "tfaas_worker_state": ("gauge", ["state"]),
    "tfaas_worker_starts": ("counter", []),
    "tfaas_worker_idle_seconds": ("gauge", []),
    "tfaas_worker_idle_timeout_seconds": ("gauge", []),
    "tfaas_worker_last_cold_start_seconds": ("gauge", []),
    "tfaas_worker_resident_memory_bytes": ("gauge", []),
    "tfaas_worker_memory_limit_bytes": ("gauge", []),
    "tfaas_worker_unanswered_seconds": ("gauge", []),
    "tfaas_model_memory_bytes": ("gauge", ["key", "model"]),
    "tfaas_gpu_memory_bytes": ("gauge", ["device"]),
    "tfaas_gpu_memory_peak_bytes": ("gauge", ["device"]),
    "tfaas_worker_devices": ("gauge", ["device", "type"]),
    "tfaas_model_device": ("gauge", ["device", "key", "model"]),
    "tfaas_batch_size_rows": ("histogram", ["model", "version"]),
    "tfaas_batch_queue_wait_seconds": ("histogram", ["model", "version"]),
}

def assert_contract(page: str) -> None:
    """Every family of FAMILIES, with its type, and labels among its own (a family with
    no samples yet shows none)."""
    found = metric_families(page)
    assert sorted(found) == sorted(FAMILIES)
    for name, (kind, labels) in found.items():
        assert kind == FAMILIES[name][0], name
        assert set(labels) <= set(FAMILIES[name][1]), (name, labels)


def test_render_escapes_labels_and_keeps_histograms_cumulative() -> None:
    class Fake:
        stats = Stats()
        in_flight = 0

        class repository:
            @staticmethod
            def names() -> list[str]:
                return ["a"]

    fake = Fake()
    for seconds in (0.0005, 0.003, 0.2, 100.0):
        fake.stats.record("POST", "json", 200, seconds, 'we"ird\nname', 2)
    fake.stats.record("POST", "json", 404, 0.001, "never-seen")
    batching = {"models": {"m/1": {
        "model": "m", "version": 1, "worker_calls": 3, "rows": 10, "requests": 5,
        "requests_per_call_histogram": {"<=1": 2, "<=4": 1}}}}
    page = render(fake, {"state": "running", "loaded": ["m@x"], "cache_size": 4},
                  batching)
    assert_contract(page)
    samples = scrape(page)
    buckets = [v for lab, v in samples["tfaas_model_request_duration_seconds_bucket"]]
    assert buckets == sorted(buckets) and buckets[-1] == 4
    assert metric_value(samples, "tfaas_model_requests_total", model='we"ird\nname') == 4
    assert "never-seen" not in json.dumps(samples)  # failed requests make no model entry
    assert metric_value(samples, "tfaas_batch_requests_per_call_bucket", model="m", le="+Inf") == 3
    assert metric_value(samples, "tfaas_batch_requests_per_call_bucket", model="m", le="1.0") == 2
    assert metric_value(samples, "tfaas_models_loaded") == 1
    assert metric_value(samples, "tfaas_requests_total", endpoint="json", code="404") == 1


async def test_metrics_endpoint(tfaas: TFaaSCaller, seed_dir: Path, jp_fetch) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    body = (seed_dir / "input.json").read_bytes()
    for _ in range(5):
        assert (await tfaas.call("POST", "json", body)).code == 200
    doc = json.loads(body)
    doc["values"] = [doc["values"]] * 3
    assert (await tfaas.predict(doc)).code == 200
    assert (await tfaas.predict({"model": "vk", "values": [1.0]})).code == 400
    assert (await tfaas.predict({"model": "nope", "values": [1.0]})).code == 404

    reply = await tfaas.call("GET", "metrics")
    assert reply.code == 200
    assert reply.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = scrape(reply.body.decode())
    assert_contract(reply.body.decode())
    assert metric_value(samples, "tfaas_requests_total", endpoint="json", code="200") == 6
    assert metric_value(samples, "tfaas_requests_total", endpoint="json", code="400") == 1
    assert metric_value(samples, "tfaas_requests_total", endpoint="upload", code="200") == 1
    # the upload, 6 answered predictions and the 400
    assert metric_value(samples, "tfaas_model_requests_total", model="vk") == 8
    assert metric_value(samples, "tfaas_errors_total") == 2
    assert "tfaas_model_errors_total" in samples
    assert metric_value(samples, "tfaas_model_rows_total", model="vk") == 8  # answered rows
    # the upload started the worker and loaded the model: a cold start, counted apart
    # from the warm calls the latency histogram holds
    assert metric_value(samples, "tfaas_model_cold_starts_total", model="vk") == 1
    assert metric_value(samples, "tfaas_model_request_duration_seconds_count", model="vk") == 7
    assert metric_value(samples, "tfaas_request_duration_seconds_bucket", endpoint="json",
                 le="+Inf") == 8
    # batch sizes: rows sent to the worker per model version, worker calls
    assert metric_value(samples, "tfaas_batch_rows_total", model="vk") == 8
    # one request at a time: nothing to stack, one worker call each
    assert metric_value(samples, "tfaas_worker_calls_total", model="vk") == 6
    assert metric_value(samples, "tfaas_models_loaded") == 1
    assert metric_value(samples, "tfaas_models_on_disk") == 1
    assert metric_value(samples, "tfaas_worker_up") == 1
    assert 'model="nope"' not in reply.body.decode()

    # behind auth
    anonymous = await jp_fetch("tfaas", "metrics", headers={"Authorization": ""},
                               raise_error=False)
    assert anonymous.code == 403 and b"tfaas_" not in anonymous.body
