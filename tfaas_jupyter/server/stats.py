"""Request counters and latencies, for /status and /metrics (Prometheus)."""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

#: Upper bounds (seconds) of the latency histogram buckets; +Inf is implicit.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)


#: Most models with their own statistics.
MAX_MODELS = 10_000


@dataclass
class Histogram:
    """A Prometheus-style histogram: per-bucket counts (not cumulative), sum and count."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        # the first bucket whose bound is >= value (the last one, +Inf, beyond them all)
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding the ``q`` quantile (None before any
        observation; the largest bound when it lies beyond it)."""
        if not self.count:
            return None
        rank, seen = q * self.count, 0
        for bound, n in zip(self.bounds, self.counts):
            seen += n
            if seen >= rank:
                return bound
        return self.bounds[-1]

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, cumulative count) pairs, ending with ``+Inf``."""
        counts = self.counts or [0] * (len(self.bounds) + 1)
        total, out = 0, []
        for bound, n in zip([*map(repr, self.bounds), "+Inf"], counts):
            total += n
            out.append((bound, total))
        return out


@dataclass
class ModelStats:
    """One model's figures. A request that waited for a cold start (the worker's start
    or the model's load) is counted and timed apart: the latency figures (``seconds``,
    ``latency``) are those of warm requests only, so one cold start of seconds does
    not hide what every later call costs."""

    requests: int = 0
    errors: int = 0
    rows: int = 0
    #: warm requests: their total seconds and latency histogram
    seconds: float = 0.0
    latency: Histogram = field(default_factory=Histogram)
    #: requests that waited for a cold start, and their total and longest seconds
    cold_starts: int = 0
    cold_seconds: float = 0.0
    cold_max: float = 0.0
    by_endpoint: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def warm_requests(self) -> int:
        return self.requests - self.cold_starts

    def observe(self, seconds: float, *, cold: bool) -> None:
        if cold:
            self.cold_starts += 1
            self.cold_seconds += seconds
            self.cold_max = max(self.cold_max, seconds)
        else:
            self.seconds += seconds
            self.latency.observe(seconds)

    def as_dict(self) -> dict[str, Any]:
        warm = self.warm_requests
        p99 = self.latency.quantile(0.99)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "rows": self.rows,
            # of warm requests (cold starts are apart, below)
            "mean_latency_ms": 1000 * self.seconds / warm if warm else None,
            # an upper bound: the histogram's bucket holding the 99th percentile
            "p99_latency_ms": None if p99 is None else 1000 * p99,
            "cold_starts": self.cold_starts,
            "cold_start_mean_ms": (1000 * self.cold_seconds / self.cold_starts
                                   if self.cold_starts else None),
            "cold_start_max_ms": 1000 * self.cold_max if self.cold_starts else None,
        }


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    by_method: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_endpoint: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: int = 0
    models: dict[str, ModelStats] = field(default_factory=lambda: defaultdict(ModelStats))
    #: (endpoint, method, status code) -> requests
    by_code: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    #: endpoint -> latency histogram
    latency: dict[str, Histogram] = field(default_factory=lambda: defaultdict(Histogram))
    #: requests refused because too many were in flight (503 "server busy")
    busy: int = 0

    def record(
        self,
        method: str,
        endpoint: str,
        status: int,
        seconds: float,
        model: str | None = None,
        rows: int = 0,
        cold: bool = False,
    ) -> None:
        """One answered request; ``cold`` when it waited for a cold start."""
        self.by_method[method] += 1
        self.by_endpoint[endpoint] += 1
        self.by_code[(endpoint, method, status)] += 1
        self.latency[endpoint].observe(seconds)
        failed = status >= 400
        if failed:
            self.errors += 1
        # A failed request may name anything (a typo, a fuzzer): only models that
        # answered once get their own entry, so the table (and /metrics) stays bounded.
        if model and (model in self.models or (not failed and len(self.models) < MAX_MODELS)):
            entry = self.models[model]
            entry.requests += 1
            entry.rows += rows
            entry.observe(seconds, cold=cold)
            entry.by_endpoint[endpoint] += 1
            if failed:
                entry.errors += 1

    def forget(self, model: str) -> None:
        self.models.pop(model, None)

    @property
    def uptime(self) -> float:
        return time.time() - self.started
