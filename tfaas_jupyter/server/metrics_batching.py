"""Prometheus metrics of the batcher per model version: the batch sizes (rows per
worker call) and the queue waits, as histograms (from the batcher's ``status()``,
read at each scrape by :class:`tfaas_jupyter.server.metrics.ServiceCollector`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import HistogramMetricFamily, Metric


def batching_metrics(batching: dict[str, Any] | None) -> Iterator[Metric]:
    """``tfaas_batch_size_rows`` and ``tfaas_batch_queue_wait_seconds`` per model
    version (none without a batcher)."""
    sizes = HistogramMetricFamily("tfaas_batch_size_rows",
                                  "Rows per model worker call (the batch size), per model "
                                  "version.", labels=["model", "version"])
    waits = HistogramMetricFamily("tfaas_batch_queue_wait_seconds",
                                  "Seconds each request waited in the batcher's queue before "
                                  "its worker call went out, per model version.",
                                  labels=["model", "version"])
    for q in sorted(((batching or {}).get("models") or {}).values(),
                    key=lambda q: (str(q.get("model")), int(q.get("version") or 0))):
        values = [str(q.get("model")), str(q.get("version"))]
        for family, key in ((sizes, "batch_size_histogram"),
                            (waits, "queue_wait_seconds_histogram")):
            doc = q.get(key)
            if doc:
                family.add_metric(values, [(str(le), n) for le, n in doc["buckets"]],
                                  doc["sum"])
    yield from (sizes, waits)
