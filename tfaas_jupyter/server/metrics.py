"""Prometheus metrics of the service, in the text exposition format 0.0.4.

Written by hand from :class:`tfaas_jupyter.server.stats.Stats`, the batcher's ``status()``
and the worker's status: no client library, and so no clash with the Prometheus
registry of the Jupyter server itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .stats import Histogram

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, object]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: object) -> None:
        self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(self, name: str, hist: Histogram, **labels: object) -> None:
        for le, count in hist.cumulative():
            self.sample(f"{name}_bucket", count, **labels, le=le)
        self.sample(f"{name}_sum", hist.sum, **labels)
        self.sample(f"{name}_count", hist.count, **labels)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(
    service: Any,
    worker: dict[str, Any] | None = None,
    batching: dict[str, Any] | None = None,
) -> str:
    """The metrics page for ``service`` (a :class:`tfaas_jupyter.server.service.TFaaS`)."""
    stats = service.stats
    out = _Writer()

    out.family("tfaas_uptime_seconds", "gauge", "Seconds since the service started.")
    out.sample("tfaas_uptime_seconds", stats.uptime)

    out.family("tfaas_requests_total", "counter", "HTTP requests by endpoint, method and code.")
    for (endpoint, method, code), n in sorted(stats.by_code.items()):
        out.sample("tfaas_requests_total", n, endpoint=endpoint, method=method, code=code)

    out.family("tfaas_errors_total", "counter", "Requests answered with a 4xx or 5xx status.")
    out.sample("tfaas_errors_total", stats.errors)

    out.family("tfaas_busy_total", "counter",
               "Predictions refused with 503 because too many were in flight.")
    out.sample("tfaas_busy_total", stats.busy)

    out.family("tfaas_in_flight_requests", "gauge", "Predictions being served now.")
    out.sample("tfaas_in_flight_requests", getattr(service, "in_flight", 0))

    out.family("tfaas_request_duration_seconds", "histogram",
               "Request latency by endpoint, from the handler's start to its finish.")
    for endpoint, hist in sorted(stats.latency.items()):
        out.histogram("tfaas_request_duration_seconds", hist, endpoint=endpoint)

    models = sorted(stats.models.items())
    out.family("tfaas_model_requests_total", "counter", "Requests per model.")
    for name, m in models:
        out.sample("tfaas_model_requests_total", m.requests, model=name)
    out.family("tfaas_model_errors_total", "counter", "Failed requests per model.")
    for name, m in models:
        out.sample("tfaas_model_errors_total", m.errors, model=name)
    out.family("tfaas_model_rows_total", "counter", "Input rows predicted per model.")
    for name, m in models:
        out.sample("tfaas_model_rows_total", m.rows, model=name)
    out.family("tfaas_model_request_duration_seconds", "histogram",
               "Latency of warm requests per model (those that waited for a cold start "
               "are counted apart).")
    for name, m in models:
        out.histogram("tfaas_model_request_duration_seconds", m.latency, model=name)
    out.family("tfaas_model_cold_starts_total", "counter",
               "Requests per model that waited for a cold start (worker start or model load).")
    for name, m in models:
        out.sample("tfaas_model_cold_starts_total", m.cold_starts, model=name)
    out.family("tfaas_model_cold_start_seconds_total", "counter",
               "Seconds of the requests per model that waited for a cold start.")
    for name, m in models:
        out.sample("tfaas_model_cold_start_seconds_total", m.cold_seconds, model=name)

    _batch_metrics(out, service, batching)
    _model_gauges(out, service, worker)
    return out.text()


def _batch_metrics(out: _Writer, service: Any, batching: dict[str, Any] | None) -> None:
    """Batch sizes per model: from the batcher when there is one, else one call per request."""
    calls: list[tuple[int, dict[str, object]]] = []
    rows: list[tuple[int, dict[str, object]]] = []
    hists: list[tuple[str, int, dict[str, object]]] = []
    if batching is not None:
        queues = ((batching or {}).get("models") or {}).values()
        for q in sorted(queues, key=lambda q: (str(q.get("model")), int(q.get("version") or 0))):
            labels: dict[str, object] = {"model": q.get("model"), "version": q.get("version")}
            calls.append((int(q.get("worker_calls") or 0), labels))
            rows.append((int(q.get("rows") or 0), labels))
            hist = q.get("requests_per_call_histogram") or {}
            total = 0
            for bound in sorted(int(str(k).lstrip("<=")) for k in hist):
                total += int(hist[f"<={bound}"])
                hists.append(("_bucket", total, {**labels, "le": repr(float(bound))}))
            hists.append(("_bucket", total, {**labels, "le": "+Inf"}))
            hists.append(("_sum", int(q.get("requests") or 0), labels))
            hists.append(("_count", int(q.get("worker_calls") or 0), labels))
    else:  # no batcher: every successful prediction request is one worker call
        for name, m in sorted(service.stats.models.items()):
            calls.append((m.requests - m.errors, {"model": name}))
            rows.append((m.rows, {"model": name}))
    out.family("tfaas_worker_calls_total", "counter", "Model worker calls per model version.")
    for value, labels in calls:
        out.sample("tfaas_worker_calls_total", value, **labels)
    out.family("tfaas_batch_rows_total", "counter",
               "Rows sent to the worker per model version (rows / calls = mean batch size).")
    for value, labels in rows:
        out.sample("tfaas_batch_rows_total", value, **labels)
    out.family("tfaas_batch_requests_per_call", "histogram",
               "Requests stacked into one worker call, per model version.")
    for suffix, value, labels in hists:
        out.sample("tfaas_batch_requests_per_call" + suffix, value, **labels)


def _model_gauges(out: _Writer, service: Any, worker: dict[str, Any] | None) -> None:
    loaded = (worker or {}).get("loaded") or []
    out.family("tfaas_models_loaded", "gauge", "Model versions loaded in the model worker.")
    out.sample("tfaas_models_loaded", len(loaded))
    out.family("tfaas_model_cache_capacity", "gauge", "Most models the worker keeps loaded.")
    out.sample("tfaas_model_cache_capacity", int((worker or {}).get("cache_size") or 0))
    out.family("tfaas_models_on_disk", "gauge", "Models in the repository.")
    out.sample("tfaas_models_on_disk", len(service.repository.names()))
    out.family("tfaas_worker_up", "gauge", "1 when the model worker is running.")
    out.sample("tfaas_worker_up", int((worker or {}).get("state") in ("ready", "running")))
    out.family("tfaas_worker_restarts_total", "counter", "Model worker restarts.")
    out.sample("tfaas_worker_restarts_total", int((worker or {}).get("restarts") or 0))
    _worker_lifecycle(out, worker or {})


def _worker_lifecycle(out: _Writer, worker: dict[str, Any]) -> None:
    """The lazy worker's state, starts, idleness, cold start and memory."""
    state = str(worker.get("state") or "unavailable")
    out.family("tfaas_worker_state", "gauge", "1 for the model worker's current state.")
    for name in ("running", "starting", "stopped", "failed", "unavailable"):
        out.sample("tfaas_worker_state", int(state == name), state=name)
    cold = worker.get("last_cold_start") or {}
    single: list[tuple[str, str, str, float]] = [
        ("tfaas_worker_starts_total", "counter",
         "Model worker starts (on first use, after an idle stop or a crash).",
         int(worker.get("starts") or 0)),
        ("tfaas_worker_idle_seconds", "gauge",
         "Seconds since the running model worker last served a call (0 when stopped).",
         float(worker.get("idle_seconds") or 0.0)),
        ("tfaas_worker_idle_timeout_seconds", "gauge",
         "Seconds without calls after which the worker stops (0: never).",
         float(worker.get("idle_timeout") or 0.0)),
        ("tfaas_worker_last_cold_start_seconds", "gauge",
         "The last cold start: worker start plus its first model's load.",
         float(cold.get("seconds") or 0.0)),
        ("tfaas_worker_resident_memory_bytes", "gauge",
         "Resident memory of the model worker (0 when stopped).", int(worker.get("rss") or 0)),
        ("tfaas_worker_memory_limit_bytes", "gauge",
         "Resident memory past which the worker evicts models (0: no limit).",
         int(worker.get("memory_limit") or 0)),
    ]
    for name, kind, help_text, number in single:
        out.family(name, kind, help_text)
        out.sample(name, number)
    out.family("tfaas_model_memory_bytes", "gauge",
               "Estimated memory of each loaded model version (RSS growth of its load).")
    for key, size in sorted((worker.get("model_sizes") or {}).items()):
        out.sample("tfaas_model_memory_bytes", int(size), model=str(key).split("@", 1)[0],
                   key=key)


async def collect(service: Any) -> str:
    """Gather the worker's and the batcher's status, then render (bounded wait)."""
    try:
        worker = await asyncio.wait_for(service.worker.status(), timeout=10)
    except Exception:
        worker = {"state": "unavailable"}
    return render(service, worker, service.runner.status())
