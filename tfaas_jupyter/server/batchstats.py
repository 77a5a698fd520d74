"""What the batcher did per model version, as histograms: the rows of each worker call
(the batch size) and the time each request waited in the queue before its call went
out. Read by ``/status`` (``batching.models``) and the metrics
(:mod:`tfaas_jupyter.server.metrics_batching`); recording is one bisect per call or
request, on the event loop, nothing more."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .stats import Histogram

#: Upper bounds of the batch-size buckets (rows per worker call); +Inf is implicit.
BATCH_SIZE_BUCKETS: tuple[float, ...] = tuple(float(1 << k) for k in range(13))
#: Upper bounds of the queue-wait buckets (seconds); a request sent at once waited 0.
QUEUE_WAIT_BUCKETS: tuple[float, ...] = (
    0.0, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0,
)


def _histogram_doc(hist: Histogram) -> dict[str, Any]:
    return {"buckets": [[le, n] for le, n in hist.cumulative()], "sum": hist.sum,
            "count": hist.count}


@dataclass
class BatchStats:
    """One model version's batch sizes and queue waits."""

    sizes: Histogram = field(default_factory=lambda: Histogram(BATCH_SIZE_BUCKETS))
    waits: Histogram = field(default_factory=lambda: Histogram(QUEUE_WAIT_BUCKETS))
    max_wait: float = 0.0

    def call(self, rows: int) -> None:
        self.sizes.observe(rows)

    def waited(self, seconds: float) -> None:
        self.waits.observe(seconds)
        if seconds > self.max_wait:
            self.max_wait = seconds

    def as_dict(self) -> dict[str, Any]:
        waits = self.waits
        p99 = waits.quantile(0.99)
        return {
            "batch_size_histogram": _histogram_doc(self.sizes),
            "queue_wait_seconds_histogram": _histogram_doc(waits),
            "queue_wait_mean_ms": round(waits.sum / waits.count * 1000, 4) if waits.count
            else None,
            "queue_wait_p99_ms": None if p99 is None else round(p99 * 1000, 4),
            "queue_wait_max_ms": round(self.max_wait * 1000, 4),
        }
