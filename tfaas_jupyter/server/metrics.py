"""Prometheus metrics of the service, in the text exposition format 0.0.4.

``prometheus_client`` writes the page from a private :class:`CollectorRegistry` holding
one custom collector, :class:`ServiceCollector`: at each scrape it reads the statistics
the service keeps anyway (:class:`tfaas_jupyter.server.stats.Stats`, the batcher's
``status()`` and the worker's status), so nothing is counted twice and the Jupyter
server's own registry (its ``/metrics``) is left alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .metrics_batching import batching_metrics
from .metrics_capture import capture_metrics
from .metrics_devices import device_metrics
from .stats import Histogram

#: What ``generate_latest`` writes: the text format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: The model worker's states, one ``tfaas_worker_state`` sample each.
WORKER_STATES = ("running", "starting", "stopped", "failed", "unavailable")


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=value)


def _histogram(name: str, help_text: str, label: str,
               series: Iterable[tuple[str, Histogram]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, help_text, labels=[label])
    for value, hist in series:
        family.add_metric([value], hist.cumulative(), hist.sum)
    return family


class ServiceCollector(Collector):
    """The service's metrics, from one snapshot of the worker's and batcher's status."""

    def __init__(self, service: Any, worker: dict[str, Any] | None,
                 batching: dict[str, Any] | None) -> None:
        self.service = service
        self.worker = worker or {}
        self.batching = batching

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._batches()
        yield from self._models()
        yield from self._worker_lifecycle()
        yield from device_metrics(self.worker)
        yield from batching_metrics(self.batching)
        yield from capture_metrics(getattr(self.service, "capture", None))

    def _requests(self) -> Iterator[Metric]:
        stats = self.service.stats
        yield _gauge("tfaas_uptime_seconds", "Seconds since the service started.", stats.uptime)
        requests = CounterMetricFamily("tfaas_requests_total",
                                       "HTTP requests by endpoint, method and code.",
                                       labels=["endpoint", "method", "code"])
        for (endpoint, method, code), n in sorted(stats.by_code.items()):
            requests.add_metric([endpoint, method, str(code)], n)
        yield requests
        yield _counter("tfaas_errors_total", "Requests answered with a 4xx or 5xx status.",
                       stats.errors)
        yield _counter("tfaas_busy_total",
                       "Predictions refused with 503 because too many were in flight.",
                       stats.busy)
        yield _gauge("tfaas_in_flight_requests", "Predictions being served now.",
                     getattr(self.service, "in_flight", 0))
        yield _histogram("tfaas_request_duration_seconds",
                         "Request latency by endpoint, from the handler's start to its finish.",
                         "endpoint", sorted(stats.latency.items()))
        models = sorted(stats.models.items())
        for name, help_text, field in (
            ("tfaas_model_requests_total", "Requests per model.", "requests"),
            ("tfaas_model_errors_total", "Failed requests per model.", "errors"),
            ("tfaas_model_rows_total", "Input rows predicted per model.", "rows"),
            ("tfaas_model_cold_starts_total",
             "Requests per model that waited for a cold start (worker start or model load).",
             "cold_starts"),
            ("tfaas_model_cold_start_seconds_total",
             "Seconds of the requests per model that waited for a cold start.",
             "cold_seconds"),
        ):
            family = CounterMetricFamily(name, help_text, labels=["model"])
            for model, entry in models:
                family.add_metric([model], getattr(entry, field))
            yield family
        yield _histogram("tfaas_model_request_duration_seconds",
                         "Latency of warm requests per model (those that waited for a cold "
                         "start are counted apart).",
                         "model", ((model, entry.latency) for model, entry in models))

    def _batches(self) -> Iterator[Metric]:
        """Batch sizes per model version: from the batcher when there is one, else one
        worker call per successful prediction request."""
        labels = ["model", "version"] if self.batching is not None else ["model"]
        calls = CounterMetricFamily("tfaas_worker_calls_total",
                                    "Model worker calls per model version.", labels=labels)
        rows = CounterMetricFamily(
            "tfaas_batch_rows_total",
            "Rows sent to the worker per model version (rows / calls = mean batch size).",
            labels=labels)
        stacked = HistogramMetricFamily("tfaas_batch_requests_per_call",
                                        "Requests stacked into one worker call, per model version.",
                                        labels=["model", "version"])
        if self.batching is not None:
            queues = sorted((self.batching.get("models") or {}).values(),
                            key=lambda q: (str(q.get("model")), int(q.get("version") or 0)))
            for q in queues:
                values = [str(q.get("model")), str(q.get("version"))]
                calls.add_metric(values, int(q.get("worker_calls") or 0))
                rows.add_metric(values, int(q.get("rows") or 0))
                counts = q.get("requests_per_call_histogram") or {}
                buckets: list[tuple[str, float]] = []
                total = 0
                for bound in sorted(int(str(k).lstrip("<=")) for k in counts):
                    total += int(counts[f"<={bound}"])
                    buckets.append((repr(float(bound)), total))
                buckets.append(("+Inf", total))
                stacked.add_metric(values, buckets, int(q.get("requests") or 0))
        else:
            for name, m in sorted(self.service.stats.models.items()):
                calls.add_metric([name], m.requests - m.errors)
                rows.add_metric([name], m.rows)
        yield from (calls, rows, stacked)

    def _models(self) -> Iterator[Metric]:
        worker = self.worker
        yield _gauge("tfaas_models_loaded", "Model versions loaded in the model worker.",
                     len(worker.get("loaded") or []))
        yield _gauge("tfaas_model_cache_capacity", "Most models the worker keeps loaded.",
                     int(worker.get("cache_size") or 0))
        yield _gauge("tfaas_models_on_disk", "Models in the repository.",
                     len(self.service.repository.names()))
        yield _gauge("tfaas_worker_up", "1 when the model worker is running.",
                     int(worker.get("state") in ("ready", "running")))
        yield _counter("tfaas_worker_restarts_total", "Model worker restarts.",
                       int(worker.get("restarts") or 0))

    def _worker_lifecycle(self) -> Iterator[Metric]:
        """The lazy worker's state, starts, idleness, cold start and memory."""
        worker = self.worker
        state = str(worker.get("state") or "unavailable")
        states = GaugeMetricFamily("tfaas_worker_state", "1 for the model worker's current state.",
                                   labels=["state"])
        for name in WORKER_STATES:
            states.add_metric([name], int(state == name))
        yield states
        cold = worker.get("last_cold_start") or {}
        single: list[tuple[type[GaugeMetricFamily | CounterMetricFamily], str, str, float]] = [
            (CounterMetricFamily, "tfaas_worker_starts_total",
             "Model worker starts (on first use, after an idle stop or a crash).",
             int(worker.get("starts") or 0)),
            (GaugeMetricFamily, "tfaas_worker_idle_seconds",
             "Seconds since the running model worker last served a call (0 when stopped).",
             float(worker.get("idle_seconds") or 0.0)),
            (GaugeMetricFamily, "tfaas_worker_idle_timeout_seconds",
             "Seconds without calls after which the worker stops (0: never).",
             float(worker.get("idle_timeout") or 0.0)),
            (GaugeMetricFamily, "tfaas_worker_last_cold_start_seconds",
             "The last cold start: worker start plus its first model's load.",
             float(cold.get("seconds") or 0.0)),
            (GaugeMetricFamily, "tfaas_worker_resident_memory_bytes",
             "Resident memory of the model worker (0 when stopped).",
             int(worker.get("rss") or 0)),
            (GaugeMetricFamily, "tfaas_worker_unanswered_seconds",
             "Seconds the running worker has left a heartbeat unanswered (0: it answers).",
             float(worker.get("unanswered_seconds") or 0.0)),
            (GaugeMetricFamily, "tfaas_worker_memory_limit_bytes",
             "Resident memory past which the worker evicts models (0: no limit).",
             int(worker.get("memory_limit") or 0)),
        ]
        for kind, name, help_text, number in single:
            yield kind(name, help_text, value=number)
        sizes = GaugeMetricFamily(
            "tfaas_model_memory_bytes",
            "Estimated memory of each loaded model version (RSS growth of its load).",
            labels=["model", "key"])
        for key, size in sorted((worker.get("model_sizes") or {}).items()):
            sizes.add_metric([str(key).split("@", 1)[0], str(key)], int(size))
        yield sizes


def render(
    service: Any,
    worker: dict[str, Any] | None = None,
    batching: dict[str, Any] | None = None,
) -> str:
    """The metrics page for ``service`` (a :class:`tfaas_jupyter.server.service.TFaaS`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(service, worker, batching))
    return generate_latest(registry).decode("utf-8")


async def collect(service: Any) -> str:
    """Gather the worker's and the batcher's status, then render (bounded wait)."""
    try:
        worker = await asyncio.wait_for(service.worker.status(), timeout=10)
    except Exception:
        worker = {"state": "unavailable"}
    return render(service, worker, service.runner.status())
