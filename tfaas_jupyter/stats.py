"""Request counters and latencies, for /status (and metrics)."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class ModelStats:
    requests: int = 0
    errors: int = 0
    rows: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        mean_ms = 1000 * self.seconds / self.requests if self.requests else None
        return {
            "requests": self.requests,
            "errors": self.errors,
            "rows": self.rows,
            "mean_latency_ms": mean_ms,
        }


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    by_method: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_endpoint: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: int = 0
    models: dict[str, ModelStats] = field(default_factory=lambda: defaultdict(ModelStats))

    def record(
        self,
        method: str,
        endpoint: str,
        status: int,
        seconds: float,
        model: str | None = None,
        rows: int = 0,
    ) -> None:
        self.by_method[method] += 1
        self.by_endpoint[endpoint] += 1
        failed = status >= 400
        if failed:
            self.errors += 1
        if model:
            entry = self.models[model]
            entry.requests += 1
            entry.rows += rows
            entry.seconds += seconds
            if failed:
                entry.errors += 1

    def forget(self, model: str) -> None:
        self.models.pop(model, None)

    @property
    def uptime(self) -> float:
        return time.time() - self.started
