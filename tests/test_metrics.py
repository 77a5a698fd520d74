"""Prometheus metrics at {base_url}tfaas/metrics: format 0.0.4, behind auth, counting
requests, errors, latency, batch sizes per model and models loaded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import TFaaSCaller

from tfaas_jupyter.server.metrics import render
from tfaas_jupyter.server.stats import Stats

pytestmark = pytest.mark.timeout(600)

_SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})?'
    r" (?P<value>[-+]?(?:[0-9.]+(?:e[-+]?[0-9]+)?|Inf|NaN))$"
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A strict reader of the text format: every family declared once, before its samples."""
    assert text.endswith("\n")
    families: dict[str, str] = {}
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in families, f"family {name} declared twice"
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name == current and kind in ("counter", "gauge", "histogram", "summary")
            families[name] = kind
        else:
            m = _SAMPLE.match(line)
            assert m, f"bad sample line: {line!r}"
            name = m.group("name")
            family = name
            if families.get(current) == "histogram":
                family = re.sub(r"_(bucket|sum|count)$", "", name)
            assert family == current, f"{name} outside its family ({current})"
            labels = dict(_LABEL.findall(m.group("labels") or ""))
            samples.setdefault(name, []).append((labels, float(m.group("value"))))
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    found = [v for lab, v in samples.get(name, [])
             if all(lab.get(k) == w for k, w in labels.items())]
    assert found, (name, labels, samples.get(name))
    return sum(found)


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
    samples = parse(render(fake, {"state": "running", "loaded": ["m@x"], "cache_size": 4},
                           batching))
    buckets = [v for lab, v in samples["tfaas_model_request_duration_seconds_bucket"]]
    assert buckets == sorted(buckets) and buckets[-1] == 4
    assert value(samples, "tfaas_model_requests_total", model='we\\"ird\\nname') == 4
    assert "never-seen" not in json.dumps(samples)  # failed requests make no model entry
    assert value(samples, "tfaas_batch_requests_per_call_bucket", model="m", le="+Inf") == 3
    assert value(samples, "tfaas_batch_requests_per_call_bucket", model="m", le="1.0") == 2
    assert value(samples, "tfaas_models_loaded") == 1
    assert value(samples, "tfaas_requests_total", endpoint="json", code="404") == 1


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
    samples = parse(reply.body.decode())
    assert value(samples, "tfaas_requests_total", endpoint="json", code="200") == 6
    assert value(samples, "tfaas_requests_total", endpoint="json", code="400") == 1
    assert value(samples, "tfaas_requests_total", endpoint="upload", code="200") == 1
    # the upload, 6 answered predictions and the 400
    assert value(samples, "tfaas_model_requests_total", model="vk") == 8
    assert value(samples, "tfaas_errors_total") == 2
    assert "tfaas_model_errors_total" in samples
    assert value(samples, "tfaas_model_rows_total", model="vk") == 8  # answered rows
    assert value(samples, "tfaas_model_request_duration_seconds_count", model="vk") == 8
    assert value(samples, "tfaas_request_duration_seconds_bucket", endpoint="json",
                 le="+Inf") == 8
    # batch sizes: rows sent to the worker per model version, worker calls
    assert value(samples, "tfaas_batch_rows_total", model="vk") == 8
    # one request at a time: nothing to stack, one worker call each
    assert value(samples, "tfaas_worker_calls_total", model="vk") == 6
    assert value(samples, "tfaas_models_loaded") == 1
    assert value(samples, "tfaas_models_on_disk") == 1
    assert value(samples, "tfaas_worker_up") == 1
    assert 'model="nope"' not in reply.body.decode()

    # behind auth
    anonymous = await jp_fetch("tfaas", "metrics", headers={"Authorization": ""},
                               raise_error=False)
    assert anonymous.code == 403 and b"tfaas_" not in anonymous.body
