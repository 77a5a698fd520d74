"""Prometheus metrics of the model worker's devices: GPU memory in use and peak per
device, and the device each loaded model runs on (from the worker's status, read at
each scrape by :class:`tfaas_jupyter.server.metrics.ServiceCollector`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from .devices import devices_status, gpu_memory


def device_metrics(worker: dict[str, Any]) -> Iterator[Metric]:
    """``tfaas_gpu_memory_bytes``, ``tfaas_gpu_memory_peak_bytes`` (per GPU; none on a
    CPU-only worker), ``tfaas_worker_devices`` (1 per logical device) and
    ``tfaas_model_device`` (1 per loaded model key and its device)."""
    devices = devices_status(worker)
    in_use = GaugeMetricFamily("tfaas_gpu_memory_bytes",
                               "GPU memory the model worker's TensorFlow holds now.",
                               labels=["device"])
    peak = GaugeMetricFamily("tfaas_gpu_memory_peak_bytes",
                             "Most GPU memory the model worker's TensorFlow held so far.",
                             labels=["device"])
    for name, current, most in gpu_memory(devices):
        in_use.add_metric([name], current)
        peak.add_metric([name], most)
    listed = GaugeMetricFamily("tfaas_worker_devices",
                               "The model worker's logical devices (1 each).",
                               labels=["device", "type"])
    for device in devices.get("devices") or []:
        listed.add_metric([str(device.get("name")), str(device.get("type"))], 1)
    models = GaugeMetricFamily("tfaas_model_device",
                               "The device each loaded model version runs on (1 each).",
                               labels=["model", "key", "device"])
    for key, device in sorted(devices["models"].items()):
        models.add_metric([key.split("@", 1)[0], key, str(device)], 1)
    yield from (in_use, peak, listed, models)
