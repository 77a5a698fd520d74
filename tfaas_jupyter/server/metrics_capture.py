"""Prometheus metrics of the capture (``TFaaSApp.capture_dir``): predictions captured,
written, and dropped (the queue full, or a model past its size cap)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric


def capture_metrics(capture: Any) -> Iterator[Metric]:
    """None when capture is off."""
    if capture is None:
        return
    counts = capture.counts
    yield CounterMetricFamily("tfaas_capture_captured_total",
                              "Predictions captured (queued for writing).",
                              value=counts.captured)
    yield CounterMetricFamily("tfaas_capture_written_total",
                              "Captured predictions written to Parquet files.",
                              value=counts.written)
    yield CounterMetricFamily("tfaas_capture_merged_hours_total",
                              "Hours of a model whose files were merged into one.",
                              value=counts.merged_hours)
    dropped = CounterMetricFamily("tfaas_capture_dropped_total",
                                  "Captured predictions dropped, by reason.",
                                  labels=["reason"])
    dropped.add_metric(["queue_full"], counts.dropped_queue_full)
    dropped.add_metric(["over_cap"], counts.dropped_over_cap)
    dropped.add_metric(["write_error"], counts.errors)
    yield dropped
