"""A record of what was scored: captured predictions written to Parquet files.

With ``TFaaSApp.capture_dir`` set, a share (``capture_rate``, 0 to 1) of the
predictions is captured: the time, the model and version, the caller (the Jupyter
user, or the TFaaS key's name), the inputs and outputs (each a column of the
model's own dtype: a request's values flattened, and the shape apart) and the
latency. The request only puts a tuple on a bounded queue (a full queue drops the
item and counts it); a background thread writes what it takes, every second or
every ``BATCH`` items, as one Parquet file per model, hour and flush:
``capture_dir/NAME/NAME-YYYYMMDD-HH-<n>.parquet`` (UTC). ``capture_max_bytes`` caps
each model's folder (0: no cap); what is past the cap is dropped and counted.

pyarrow is imported by the writer thread only, so a server without capture never
loads it.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

#: Most items the writer puts in one file (it also writes what it has every second).
BATCH = 2048
#: Seconds between the writer's looks at the queue.
DRAIN_SECONDS = 0.1
#: Items the queue holds; beyond, a capture is dropped (and counted), never waited for.
QUEUE_SIZE = 10_000


@dataclass
class CaptureCounts:
    captured: int = 0
    written: int = 0
    dropped_queue_full: int = 0
    dropped_over_cap: int = 0
    files: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Item:
    at: float
    model: str
    version: int
    caller: str
    latency_s: float
    inputs: Sequence[tuple[str, np.ndarray]]
    outputs: Sequence[tuple[str, np.ndarray]]


@dataclass
class Capture:
    """The capture of one server: :meth:`offer` on the request's path (a random draw
    and a ``put_nowait``), the writing on a thread of its own."""

    folder: Path
    rate: float = 1.0
    max_bytes: int = 0
    queue_size: int = QUEUE_SIZE
    counts: CaptureCounts = field(default_factory=CaptureCounts)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.rate = min(max(float(self.rate), 0.0), 1.0)
        self._queue: queue.Queue[_Item | None] = queue.Queue(self.queue_size)
        self._sizes: dict[str, int] = {}
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._random = random.Random()

    # ----------------------------------------------------------------- request side

    def offer(self, model: str, version: int, caller: str | None, latency_s: float,
              inputs: Sequence[tuple[str, np.ndarray]],
              outputs: Sequence[tuple[str, np.ndarray]]) -> None:
        """Capture one prediction (or not: the rate's draw); never blocks."""
        if self.rate < 1.0 and self._random.random() >= self.rate:
            return
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(_Item(time.time(), model, version, caller or "",
                                         latency_s, inputs, outputs))
        except queue.Full:
            self.counts.dropped_queue_full += 1
            return
        self.counts.captured += 1

    def status(self) -> dict[str, Any]:
        return {"dir": str(self.folder), "rate": self.rate, "max_bytes_per_model":
                self.max_bytes, "queued": self._queue.qsize(), **self.counts.as_dict()}

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout)
        self._thread = None

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything offered so far is written (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._queue.unfinished_tasks and time.monotonic() < deadline):
            time.sleep(0.01)

    # ----------------------------------------------------------------- writer side

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tfaas-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending: list[_Item] = []
        last = time.monotonic()
        done = False
        while not done:
            # Drained on a timer, not woken by each item: a thread blocked in get()
            # is notified by every request's put, and each wake-up takes the GIL from
            # the event loop (the writing itself is once a second).
            time.sleep(DRAIN_SECONDS)
            while len(pending) < BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    self._queue.task_done()
                    break
                pending.append(item)
            if pending and (done or len(pending) >= BATCH or time.monotonic() - last >= 1.0):
                self._write(pending)
                for _ in pending:
                    self._queue.task_done()
                pending = []
                last = time.monotonic()
            elif not pending:
                last = time.monotonic()

    def _write(self, items: list[_Item]) -> None:
        groups: dict[tuple[str, int, int], list[_Item]] = {}
        for it in items:  # by the hour since the epoch (UTC), named once per group
            groups.setdefault((it.model, it.version, int(it.at // 3600)), []).append(it)
        for (model, _version, hours), group in groups.items():
            hour = datetime.fromtimestamp(hours * 3600, timezone.utc).strftime("%Y%m%d-%H")
            try:
                self._write_group(model, hour, group)
            except Exception:  # a bad folder or a full disk: counted, logged, never raised
                self.counts.errors += len(group)
                log.exception("tfaas: cannot write the capture of %s", model)

    def _model_bytes(self, model: str, folder: Path) -> int:
        if model not in self._sizes:
            self._sizes[model] = sum(p.stat().st_size for p in folder.glob("*.parquet"))
        return self._sizes[model]

    def _write_group(self, model: str, hour: str, group: list[_Item]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = self.folder / model
        folder.mkdir(exist_ok=True, mode=0o700)
        if self.max_bytes and self._model_bytes(model, folder) >= self.max_bytes:
            self.counts.dropped_over_cap += len(group)
            return
        columns: dict[str, Any] = {
            "time": pa.array([int(it.at * 1e6) for it in group], pa.timestamp("us", "UTC")),
            "model": pa.array([it.model for it in group], pa.string()),
            "version": pa.array([it.version for it in group], pa.int64()),
            "caller": pa.array([it.caller for it in group], pa.string()),
            "latency_ms": pa.array([it.latency_s * 1000 for it in group], pa.float64()),
        }
        for side, prefix in (("inputs", "input"), ("outputs", "output")):
            names = [name for name, _ in getattr(group[0], side)]
            for i, name in enumerate(names):
                arrays = [getattr(it, side)[i][1] if i < len(getattr(it, side)) else
                          np.zeros(0) for it in group]
                columns[f"{prefix}:{name}"] = pa.array(
                    [np.ascontiguousarray(a).reshape(-1) for a in arrays])
                columns[f"{prefix}:{name}:shape"] = pa.array(
                    [list(a.shape) for a in arrays], pa.list_(pa.int64()))
        table = pa.table(columns)
        self._seq += 1
        path = folder / f"{model}-{hour}-{time.time_ns()}-{self._seq}.parquet"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as sink:
            pq.write_table(table, sink)
        os.replace(tmp, path)
        self._sizes[model] = self._model_bytes(model, folder) + path.stat().st_size
        self.counts.written += len(group)
        self.counts.files += 1


def read_capture(folder: Path, model: str) -> bytes:
    """Every captured prediction of ``model`` as one Parquet file's bytes (an empty
    table when none), for ``GET tfaas/capture/NAME``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((Path(folder) / model).glob("*.parquet"))
    tables = [pq.read_table(p) for p in files]
    table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue())


def capture_prediction(capture: Capture, mv: Any, inputs: Sequence[np.ndarray],
                       outputs: Sequence[np.ndarray], stages: Any) -> None:
    """Offer one prediction of model version ``mv`` (its inputs and outputs named by its
    signature) with the request's caller and latency so far (``stages``: its
    :class:`~tfaas_jupyter.server.timing.Stages`, or None)."""
    signature = mv.signature or {}

    def named(side: str, arrays: Sequence[np.ndarray]) -> list[tuple[str, np.ndarray]]:
        specs = signature.get(side) or []
        return [(str(specs[i]["name"]) if i < len(specs) else str(i), np.asarray(a))
                for i, a in enumerate(arrays)]

    latency = time.perf_counter() - stages.began if stages is not None else 0.0
    capture.offer(mv.name, mv.version, getattr(stages, "caller", None), latency,
                  named("inputs", inputs), named("outputs", outputs))
