"""A record of what was scored: captured predictions written to Parquet files.

With ``TFaaSApp.capture_dir`` set, a share (``capture_rate``, 0 to 1) of the
predictions is captured: the time, the model and version, the caller (the Jupyter
user, or the TFaaS key's name), the inputs and outputs (each a column of the
model's own dtype: a request's values flattened, and the shape apart) and the
latency. The request only appends its arrays to its model version's pending columns
(held up to ``queue_size`` captures: beyond, a capture is dropped and counted); a
background thread takes what is pending, every second or every ``BATCH`` captures,
and writes it as one Parquet file per model, hour and flush:
``capture_dir/NAME/NAME-YYYYMMDD-HH-<n>.parquet`` (UTC). Once an hour is over (and
``MERGE_AFTER_S`` more), the writer merges that hour's files into one,
``NAME-YYYYMMDD-HH.parquet`` (one more, ``NAME-YYYYMMDD-HH.<k>.parquet``, per other
set of columns, e.g. a version with another signature; a take written late joins its
hour's file), so that a day under load is 24 files per model, not 86,400. A merged
file names, in its Parquet metadata, the files it holds: one left behind by a merge
that was cut short is not read twice, and is removed by the next writer.
``capture_max_bytes`` caps each model's folder (0: no cap); what is past the cap is
dropped and counted.

pyarrow is imported by the writer thread only, so a server without capture never
loads it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .capture_files import HOUR_FORMAT, hour_files, hour_start, merge_hour, read_capture

log = logging.getLogger(__name__)

#: Captures pending at which the request that brings the count there wakes the writer.
BATCH = 2048
#: Seconds between the writer's takings of what is pending, when fewer than ``BATCH``.
WRITE_SECONDS = 1.0
#: Captures held before the writer takes them; beyond, a capture is dropped (and
#: counted), never waited for.
QUEUE_SIZE = 10_000
#: Seconds after an hour's end before its files are merged: a capture offered just
#: before the hour ends is written by a later take.
MERGE_AFTER_S = 120.0
#: The clock of the capture's times and of the merges (the tests move it).
_now = time.time


@dataclass
class CaptureCounts:
    captured: int = 0
    written: int = 0
    dropped_queue_full: int = 0
    dropped_over_cap: int = 0
    files: int = 0
    merged_hours: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _Pending:
    """One model version's captures not yet written, a list per column.

    A capture appends to these lists and creates no container of its own: retained
    for up to a second, per-capture tuples and lists were tracked by the garbage
    collector and made its collections more frequent and longer for every request."""

    __slots__ = ("mv", "at", "caller", "latency_s", "inputs", "outputs")

    def __init__(self, mv: Any, n_inputs: int, n_outputs: int) -> None:
        self.mv = mv
        self.at: list[float] = []
        self.caller: list[str] = []
        self.latency_s: list[float] = []
        self.inputs: list[list[np.ndarray]] = [[] for _ in range(n_inputs)]
        self.outputs: list[list[np.ndarray]] = [[] for _ in range(n_outputs)]


@dataclass
class Capture:
    """The capture of one server: :meth:`offer` on the request's path (a few list
    appends under a lock), the writing on a thread of its own.

    The writer wakes once a ``WRITE_SECONDS``, or when ``BATCH`` captures are pending,
    and takes the GIL as few times as it can: under load the event loop holds it,
    and each time the writer asks for it back it waits up to the interpreter's switch
    interval while every release of the loop's wakes it. Polling ten times a second
    and a stat, a mkdir and a file write each their own release cost the server more
    CPU per request than the writing itself (measured in benchmarks/README.md)."""

    folder: Path
    rate: float = 1.0
    max_bytes: int = 0
    queue_size: int = QUEUE_SIZE
    counts: CaptureCounts = field(default_factory=CaptureCounts)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.rate = min(max(float(self.rate), 0.0), 1.0)
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int, int], _Pending] = {}
        self._held = 0  # captures in ``_pending``
        self._unwritten = 0  # captures offered and not yet written, dropped or failed
        self._wake = threading.Event()
        self._stop = False
        self._sizes: dict[str, int] = {}
        self._folders: set[Path] = set()  # made by this writer, not made again
        self._open_hours: dict[str, set[str]] = {}  # model -> hours with unmerged files
        # held by a merge and by a reading: a reader never lists a file the merge then
        # removes, nor misses the merged file that replaces it
        self._files_lock = threading.Lock()
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._random = random.Random()

    # ----------------------------------------------------------------- request side

    def offer(self, mv: Any, caller: str | None, latency_s: float,
              inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> None:
        """Capture one prediction of model version ``mv`` (its ``name``, ``version``,
        ``key``, and ``signature``, which names the columns when they are written),
        or not: the rate's draw. Never blocks."""
        if self.rate < 1.0 and self._random.random() >= self.rate:
            return
        if self._thread is None:
            self._start()
        if self._held >= self.queue_size:
            self.counts.dropped_queue_full += 1
            return
        at = _now()
        key = (mv.key, len(inputs), len(outputs))
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending(mv, len(inputs), len(outputs))
            pending.at.append(at)
            pending.caller.append(caller or "")
            pending.latency_s.append(latency_s)
            for column, array in zip(pending.inputs, inputs):
                column.append(array if _settled(array) else array.copy())
            for column, array in zip(pending.outputs, outputs):
                column.append(array if _settled(array) else array.copy())
            self._held += 1
            self._unwritten += 1
        self.counts.captured += 1
        if self._held == BATCH:
            self._wake.set()

    def status(self) -> dict[str, Any]:
        return {"dir": str(self.folder), "rate": self.rate, "max_bytes_per_model":
                self.max_bytes, "queued": self._held, **self.counts.as_dict()}

    def close(self, timeout: float = 10.0) -> None:
        """Write what is pending, then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._stop = True
        self._wake.set()
        thread.join(timeout)
        self._thread = None

    def read(self, model: str, since: datetime | None = None,
             until: datetime | None = None) -> bytes:
        """:func:`read_capture` of this capture's folder, never beside a merge."""
        with self._files_lock:
            return read_capture(self.folder, model, since, until)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything offered so far is written (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._unwritten and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.01)

    # ----------------------------------------------------------------- writer side

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tfaas-capture", daemon=True)
        self._thread.start()

    def _take(self) -> list[_Pending]:
        with self._lock:
            taken = list(self._pending.values())
            self._pending = {}
            self._held = 0
        return taken

    def _run(self) -> None:
        while True:
            self._wake.wait(WRITE_SECONDS)
            self._wake.clear()
            stop = self._stop
            for pending in self._take():
                self._write(pending)
            self._merge_closed_hours()
            if stop:
                return

    def _write(self, pending: _Pending) -> None:
        """Write one version's captures, a file per hour (UTC) they fall in."""
        n = len(pending.at)
        try:
            at = np.asarray(pending.at, dtype=np.float64)
            hours = (at // 3600).astype(np.int64)
            for hours_since_epoch in np.unique(hours):
                rows = np.flatnonzero(hours == hours_since_epoch)
                hour = datetime.fromtimestamp(int(hours_since_epoch) * 3600,
                                              timezone.utc).strftime(HOUR_FORMAT)
                self._write_rows(pending, at, rows if len(rows) < n else None, hour)
        except Exception:  # a bad folder or a full disk: counted, logged, never raised
            self.counts.errors += n
            log.exception("tfaas: cannot write the capture of %s", pending.mv.name)
        finally:
            with self._lock:
                self._unwritten -= n

    def _model_bytes(self, model: str, folder: Path) -> int:
        if model not in self._sizes:
            self._sizes[model] = sum(p.stat().st_size for p in folder.glob("*.parquet"))
        return self._sizes[model]

    def _folder(self, model: str) -> Path:
        """The model's folder, made (0700, and the capture folder above it) the first
        time; made again after a failed write, in case it was removed."""
        folder = self.folder / model
        if folder not in self._folders:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            folder.mkdir(exist_ok=True, mode=0o700)
            self._folders.add(folder)
            # hours an earlier server left unmerged are merged too, once they are over
            self._open_hours.setdefault(model, set()).update(
                hour for hour, (_, parts) in hour_files(folder, model).items() if parts)
        return folder

    def _write_rows(self, pending: _Pending, at: np.ndarray, rows: np.ndarray | None,
                    hour: str) -> None:
        """Write ``rows`` of ``pending`` (None: all) as one Parquet file of ``hour``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        model: str = pending.mv.name

        def pick(values: list[Any]) -> list[Any]:
            return values if rows is None else [values[i] for i in rows]

        n = len(pending.at) if rows is None else len(rows)
        folder = self._folder(model)
        if self.max_bytes and self._model_bytes(model, folder) >= self.max_bytes:
            self.counts.dropped_over_cap += n
            return
        times = at if rows is None else at[rows]
        columns: dict[str, Any] = {
            "time": pa.array((times * 1e6).astype(np.int64), pa.timestamp("us", "UTC")),
            "model": pa.repeat(pa.scalar(model, pa.string()), n),
            "version": pa.array(np.full(n, pending.mv.version, dtype=np.int64)),
            "caller": pa.array(pick(pending.caller), pa.string()),
            "latency_ms": pa.array(np.asarray(pick(pending.latency_s)) * 1000, pa.float64()),
        }
        input_names, output_names = signature_names(pending.mv)
        for prefix, names, tensors in (("input", input_names, pending.inputs),
                                       ("output", output_names, pending.outputs)):
            for i, column in enumerate(tensors):
                name = str(names[i]) if i < len(names) else str(i)
                values, shapes = _tensor_columns(pick(column))
                columns[f"{prefix}:{name}"] = values
                columns[f"{prefix}:{name}:shape"] = shapes
        table = pa.table(columns)
        sink = pa.BufferOutputStream()
        # Dictionary encoding is pyarrow's default for every column: on tensor values
        # it took three quarters of the writing's time, and made the file bigger
        # (measured in benchmarks/README.md).
        pq.write_table(table, sink, use_dictionary=False)
        data = sink.getvalue()
        self._seq += 1
        path = folder / f"{model}-{hour}-{time.time_ns()}-{self._seq}.parquet"
        tmp = path.with_suffix(".tmp")
        try:
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                      "wb") as file:
                file.write(data)
            os.replace(tmp, path)
        except OSError:
            self._folders.discard(folder)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._sizes[model] = self._model_bytes(model, folder) + data.size
        self._open_hours.setdefault(model, set()).add(hour)
        self.counts.written += n
        self.counts.files += 1

    def _merge_closed_hours(self) -> None:
        """Merge the files of each hour that is over, once per hour and model."""
        now = _now()
        for model, hours in self._open_hours.items():
            for hour in sorted(hours):
                if hour_start(hour) + 3600 + MERGE_AFTER_S > now:
                    continue
                hours.discard(hour)
                try:
                    with self._files_lock:
                        merged = merge_hour(self.folder / model, model, hour)
                except Exception:  # the hour's files stay as they are, and readable
                    log.exception("tfaas: cannot merge the capture of %s, hour %s",
                                  model, hour)
                    continue
                finally:
                    self._sizes.pop(model, None)  # measured again at the next write
                if merged:
                    self.counts.merged_hours += 1


def _settled(array: np.ndarray) -> bool:
    """Whether ``array``'s values stay as they are once the request is answered: its
    memory is numpy's own or immutable bytes. Not so for a view of a client's shared
    memory region, which the client writes again as soon as it has its answer: that
    one is copied, or the capture would hold the client's next values."""
    base: Any = array
    while isinstance(base, np.ndarray):
        if base.base is None:
            return True
        base = base.base
    return isinstance(base, bytes)


def _tensor_columns(arrays: list[np.ndarray]) -> tuple[Any, Any]:
    """A tensor's two columns: each capture's values, flattened, and its shape.

    Captures of one version mostly share a shape and dtype (a request of one row):
    those are concatenated by numpy in one call, and their columns built from the
    flat values and offsets; with pyarrow's own conversion of a list of arrays the
    whole write took 5.8 µs per capture instead of 4.4 (benchmarks/README.md)."""
    import pyarrow as pa

    if not all(type(a) is np.ndarray for a in arrays):
        arrays = [np.asarray(a) for a in arrays]
    first = arrays[0]
    shape, n = first.shape, len(arrays)
    if (first.dtype.kind in "biuf" and first.ndim
            and len({(a.shape, a.dtype) for a in arrays}) == 1):
        size, ndim = first.size, first.ndim
        values = pa.ListArray.from_arrays(
            pa.array(np.arange(0, size * n + 1, size, dtype=np.int32)),
            pa.array(np.concatenate(arrays).reshape(-1)))
        shapes = pa.ListArray.from_arrays(
            pa.array(np.arange(0, ndim * n + 1, ndim, dtype=np.int32)),
            pa.array(np.tile(np.asarray(shape, dtype=np.int64), n)))
        return values, shapes
    return (pa.array([np.ascontiguousarray(a).reshape(-1) for a in arrays]),
            pa.array([list(a.shape) for a in arrays], pa.list_(pa.int64())))


def capture_prediction(capture: Capture, mv: Any, inputs: Sequence[np.ndarray],
                       outputs: Sequence[np.ndarray], stages: Any) -> None:
    """Offer one prediction of model version ``mv`` (its inputs and outputs named by its
    signature, when written) with the request's caller and latency so far (``stages``:
    its :class:`~tfaas_jupyter.server.timing.Stages`, or None)."""
    latency = time.perf_counter() - stages.began if stages is not None else 0.0
    capture.offer(mv, getattr(stages, "caller", None), latency, inputs, outputs)


def signature_names(mv: Any) -> tuple[list[str], list[str]]:
    """The input and output names of ``mv``'s signature (none while it is not known)."""
    signature = mv.signature or {}
    return ([str(spec["name"]) for spec in signature.get("inputs") or []],
            [str(spec["name"]) for spec in signature.get("outputs") or []])
