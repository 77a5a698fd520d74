"""Adaptive (greedy) batching of prediction requests, in the server's event loop.

Why: one worker call has a fixed cost (a frame each way over the socketpair, a
thread hop in the worker, the concrete function's dispatch) that dwarfs the
per-row cost of a small model, and a heavier model (a CNN) runs a batch of 32
rows in far less than 32 single-row calls. Stacking the rows of concurrent
requests into one call therefore buys throughput under load.

The policy is Triton's default, the one that costs nothing when idle:

* an idle model dispatches a request at once (batch-1 latency is the raw call);
* while ``max_in_flight`` calls for a model are running, new requests queue; when
  a call returns, the queue goes out as one batch of at most ``max_batch_size``
  rows, made only of requests with the same per-row shapes and dtypes;
* ``max_queue_delay_us`` (default 0) lets a non-full queue wait that long, counted
  from its oldest request, for more rows; it never delays a full batch;
* a request of ``max_batch_size`` rows or more is sent alone, whole: stacking never
  exceeds the bound, so batching cannot cause an OOM that the requests alone would
  not (BentoML's #3859), while bulk scoring keeps one worker call per request
  (cutting a 10,000-row request into 256-row chunks cost 2.5x its rows/s);
* when a stacked call fails with an error that may come from one request's data
  or size (bad input, model failure, out of memory; not a crashed, timed-out or
  unavailable worker), every member is retried alone, so only the bad one fails
  (MLServer and BentoML shipped batchers where one request's error or shape failed
  its neighbours).

Per model, ``params.json`` may override ``max_batch_size``, ``max_queue_delay_us``,
``max_in_flight`` and turn batching off with ``"batching": false`` (for models whose
output for a row depends on the other rows of the batch). With batching off (for
the server, or for a model) every request is one worker call: the same
:class:`Batcher` is the server's only :class:`Runner`.

No Tornado here: the batcher is called by :class:`tfaas_jupyter.server.service.TFaaS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from .batchparams import queue_delay_us
from .batchstats import BatchStats
from .errors import ErrorKind
from .modelref import ModelRef
from .timing import ModelAnswer, Stages

log = logging.getLogger(__name__)

#: Worker errors of these kinds say nothing about one request's data (timeout, worker
#: crashed or unavailable, model not loadable): retrying each member alone would only
#: multiply them.
_NOT_RETRIED = frozenset({ErrorKind.TIMEOUT, ErrorKind.UNAVAILABLE, ErrorKind.LOAD})


class Runner(Protocol):
    """Runs models on input arrays: what the service calls to predict."""

    async def predict(self, model: ModelRef, inputs: list[np.ndarray],
                      stages: Stages | None = None) -> list[np.ndarray]:
        """One array per output (rows first) for one array per input (rows first); the
        call's queueing, worker and model time are added to ``stages`` when given."""
        ...

    def status(self) -> dict[str, Any]:
        """How the runner is configured and how it went, for ``/status``."""
        ...


class WorkerCalls(Protocol):
    """What the batcher needs of the model worker
    (:class:`~tfaas_jupyter.server.supervisor.ModelWorker`; tests use a fake)."""

    async def predict(self, model: ModelRef, inputs: list[np.ndarray]) -> ModelAnswer: ...

#: Idle per-model queues kept at most (a deleted model's queue is dropped past this).
_MAX_IDLE_QUEUES = 64


@dataclass(frozen=True)
class BatchConfig:
    """The batching policy of one model version."""

    enabled: bool = True
    max_batch_size: int = 256
    max_queue_delay_us: int = 0
    max_in_flight: int = 2

    def overridden(self, params: dict[str, Any]) -> BatchConfig:
        """This policy with a model's params.json overrides applied (bad values ignored)."""
        return BatchConfig(
            enabled=self.enabled and rows_independent(params),
            max_batch_size=_positive(params, "max_batch_size", self.max_batch_size, 1),
            max_queue_delay_us=_positive(
                {"max_queue_delay_us": queue_delay_us(params)}, "max_queue_delay_us",
                self.max_queue_delay_us, 0
            ),
            max_in_flight=_positive(params, "max_in_flight", self.max_in_flight, 1),
        )


def rows_independent(params: dict[str, Any]) -> bool:
    """Whether a model scores each row on its own, so that rows of several requests may
    be stacked and one request's rows cut into pieces: unless its params.json says
    ``"batching": false``."""
    return params.get("batching") is not False


def _positive(params: dict[str, Any], key: str, default: int, minimum: int) -> int:
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        log.warning("tfaas: ignoring params.json %s=%r (want an integer >= %d)",
                    key, value, minimum)
        return default
    return int(value)


@dataclass
class _Item:
    """One request waiting for its rows' outputs (a big request is one item too, never cut)."""

    inputs: list[np.ndarray]
    rows: int
    signature: tuple[Any, ...]
    future: asyncio.Future[list[np.ndarray]]
    queued_at: float
    #: seconds waiting in the queue, the worker call's round trip, and the worker's
    #: answer (its time inside the model)
    queue: float = 0.0
    worker: float = 0.0
    answer: ModelAnswer | None = None


@dataclass
class _Queue:
    """The pending requests and the counters of one model version."""

    name: str
    version: int
    config: BatchConfig
    pending: deque[_Item] = field(default_factory=deque)
    queued_rows: int = 0
    in_flight: int = 0
    timer: asyncio.TimerHandle | None = None
    # counters for /status
    requests: int = 0
    calls: int = 0
    rows: int = 0
    stacked_calls: int = 0
    max_rows: int = 0
    max_requests: int = 0
    retried_batches: int = 0
    oversized_requests: int = 0
    histogram: dict[int, int] = field(default_factory=dict)
    #: rows per call and queue waits, as histograms
    batch: BatchStats = field(default_factory=BatchStats)

    def take(self) -> list[_Item]:
        """The next batch: the oldest request plus every later one of the same
        signature that still fits in ``max_batch_size`` rows (order kept)."""
        limit = self.config.max_batch_size
        first = self.pending.popleft()
        batch, rows, sig = [first], first.rows, first.signature
        if self.pending and rows < limit:
            keep: deque[_Item] = deque()
            while self.pending:
                item = self.pending.popleft()
                if item.future.done():  # cancelled by its caller: drop it
                    self.queued_rows -= item.rows
                    continue
                if item.signature == sig and rows + item.rows <= limit:
                    batch.append(item)
                    rows += item.rows
                    if rows == limit:
                        break
                else:
                    keep.append(item)
            keep.extend(self.pending)
            self.pending = keep
        self.queued_rows -= rows
        return batch

    def record(self, requests: int, rows: int) -> None:
        """Count one worker call carrying ``requests`` requests and ``rows`` rows."""
        self.calls += 1
        self.rows += rows
        if requests > 1:
            self.stacked_calls += 1
        if rows > self.max_rows:
            self.max_rows = rows
        if requests > self.max_requests:
            self.max_requests = requests
        bucket = 1 << (requests - 1).bit_length()  # requests per call, rounded up to 2^k
        self.histogram[bucket] = self.histogram.get(bucket, 0) + 1
        self.batch.call(rows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "version": self.version,
            "enabled": self.config.enabled,
            "max_batch_size": self.config.max_batch_size,
            "max_queue_delay_us": self.config.max_queue_delay_us,
            "max_in_flight": self.config.max_in_flight,
            "requests": self.requests,
            "worker_calls": self.calls,
            "stacked_calls": self.stacked_calls,
            "rows": self.rows,
            "mean_requests_per_call": round(self.requests / self.calls, 2) if self.calls else 0,
            "mean_rows_per_call": round(self.rows / self.calls, 2) if self.calls else 0,
            "max_requests_per_call": self.max_requests,
            "max_rows_per_call": self.max_rows,
            "requests_per_call_histogram": {
                f"<={k}": v for k, v in sorted(self.histogram.items())
            },
            "retried_batches": self.retried_batches,
            "oversized_requests": self.oversized_requests,
            "queued": len(self.pending),
            "in_flight": self.in_flight,
            **self.batch.as_dict(),
        }


def _signature(inputs: Sequence[np.ndarray]) -> tuple[Any, ...]:
    """What must be equal for two requests' rows to be stacked: per-row shape and dtype."""
    return tuple((a.shape[1:], a.dtype.str) for a in inputs)


class Batcher:
    """The :class:`Runner`: stacks concurrent requests to a model (``enabled``), or
    sends each alone (batching off, for the server or for one model)."""

    def __init__(
        self,
        worker: WorkerCalls,
        *,
        enabled: bool = True,
        max_batch_size: int = 256,
        max_queue_delay_us: int = 0,
        max_in_flight: int = 2,
    ) -> None:
        self.worker = worker
        self.defaults = BatchConfig(
            enabled=enabled,
            max_batch_size=max(1, int(max_batch_size)),
            max_queue_delay_us=max(0, int(max_queue_delay_us)),
            max_in_flight=max(1, int(max_in_flight)),
        )
        self._queues: dict[str, _Queue] = {}

    # ------------------------------------------------------------------ public

    async def predict(self, mv: ModelRef, inputs: list[np.ndarray],
                      stages: Stages | None = None) -> list[np.ndarray]:
        """The model's outputs for ``inputs`` (one array per input, rows first); the
        request's queueing, worker and model time are added to ``stages`` when given."""
        q = self._queues.get(mv.key)
        if q is None:
            q = self._queue(mv)
        q.requests += 1
        if not q.config.enabled or not inputs or inputs[0].ndim == 0:
            return await self._direct(q, mv, inputs, stages)
        rows = inputs[0].shape[0]
        for a in inputs:
            if a.ndim == 0 or a.shape[0] != rows:
                # the worker reports the mismatch
                return await self._direct(q, mv, inputs, stages)
        if rows == 0:
            return await self._direct(q, mv, inputs, stages)
        return await self._submit(q, mv, inputs, rows, stages)

    def status(self) -> dict[str, Any]:
        """The policy and, per model version used since the start, how batching went."""
        return {
            "enabled": self.defaults.enabled,
            "max_batch_size": self.defaults.max_batch_size,
            "max_queue_delay_us": self.defaults.max_queue_delay_us,
            "max_in_flight": self.defaults.max_in_flight,
            "models": {
                f"{q.name}/{q.version}": q.as_dict()
                for q in sorted(self._queues.values(), key=lambda q: (q.name, q.version))
            },
        }

    # ------------------------------------------------------------------ internals

    def _queue(self, mv: ModelRef) -> _Queue:
        if len(self._queues) >= _MAX_IDLE_QUEUES:
            for key in [k for k, q in self._queues.items() if not q.pending and not q.in_flight]:
                del self._queues[key]
        q = _Queue(name=mv.name, version=mv.version,
                   config=self.defaults.overridden(dict(mv.params)))
        self._queues[mv.key] = q
        return q

    async def _call(self, mv: ModelRef, inputs: list[np.ndarray]) -> ModelAnswer:
        return await self.worker.predict(mv, inputs)

    async def _direct(self, q: _Queue, mv: ModelRef, inputs: list[np.ndarray],
                      stages: Stages | None) -> list[np.ndarray]:
        q.calls += 1
        q.batch.call(inputs[0].shape[0] if inputs and inputs[0].ndim else 0)
        q.batch.waited(0.0)
        return await self._timed_call(mv, inputs, stages)

    async def _timed_call(self, mv: ModelRef, inputs: list[np.ndarray],
                          stages: Stages | None) -> list[np.ndarray]:
        """The worker call of the caller's own request, its time added to the request's
        ``Server-Timing`` stages."""
        began = time.perf_counter()
        answer = await self._call(mv, inputs)
        if stages is not None:
            stages.add_call(time.perf_counter() - began, answer)
        return answer.outputs

    async def _submit(
        self, q: _Queue, mv: ModelRef, inputs: list[np.ndarray], rows: int,
        stages: Stages | None,
    ) -> list[np.ndarray]:
        config = q.config
        if rows > config.max_batch_size:
            q.oversized_requests += 1  # goes alone: take() never adds to a full first item
        if not q.pending and q.in_flight < config.max_in_flight and (
            config.max_queue_delay_us == 0 or rows >= config.max_batch_size
        ):
            # Idle: run it now in the caller's own task (no task, no queue, no future).
            q.in_flight += 1
            return await self._run_alone(q, mv, inputs, rows, stages)
        loop = asyncio.get_running_loop()
        item = _Item(inputs, rows, _signature(inputs), loop.create_future(), loop.time())
        q.pending.append(item)
        q.queued_rows += rows
        self._kick(q, mv)
        outputs = await item.future
        if stages is not None and item.answer is not None:
            stages.add_call(item.worker, item.answer, item.queue)
        return outputs

    def _kick(self, q: _Queue, mv: ModelRef) -> None:
        """Send out as many batches as free call slots allow (or arm the delay timer)."""
        config = q.config
        while q.pending and q.in_flight < config.max_in_flight:
            if q.pending[0].future.done():  # its caller went away
                q.queued_rows -= q.pending.popleft().rows
                continue
            if config.max_queue_delay_us and q.queued_rows < config.max_batch_size:
                loop = asyncio.get_running_loop()
                deadline = q.pending[0].queued_at + config.max_queue_delay_us / 1e6
                if loop.time() < deadline:
                    if q.timer is None or q.timer.when() > deadline:
                        if q.timer is not None:
                            q.timer.cancel()
                        q.timer = loop.call_at(deadline, self._on_timer, q, mv)
                    return
            batch = q.take()
            now = asyncio.get_running_loop().time()
            for it in batch:
                it.queue = now - it.queued_at
                q.batch.waited(it.queue)
            q.in_flight += 1
            asyncio.ensure_future(self._run(q, mv, batch))

    async def _run_alone(self, q: _Queue, mv: ModelRef, inputs: list[np.ndarray],
                         rows: int, stages: Stages | None) -> list[np.ndarray]:
        """One worker call for one request of an idle model, in the caller's task (its
        slot is already counted in ``in_flight``); its error is the caller's."""
        try:
            q.record(1, rows)
            q.batch.waited(0.0)
            return await self._timed_call(mv, inputs, stages)
        finally:
            q.in_flight -= 1
            if q.pending:
                self._kick(q, mv)

    def _on_timer(self, q: _Queue, mv: ModelRef) -> None:
        q.timer = None
        self._kick(q, mv)

    async def _run(self, q: _Queue, mv: ModelRef, batch: list[_Item]) -> None:
        """One worker call for ``batch`` (its slot is already counted in ``in_flight``);
        hands each member its rows, or its own error."""
        try:
            n = len(batch[0].inputs)
            if len(batch) == 1:
                inputs, rows = batch[0].inputs, batch[0].rows
            else:
                inputs = [np.concatenate([it.inputs[i] for it in batch]) for i in range(n)]
                rows = sum(it.rows for it in batch)
            q.record(len(batch), rows)
            began = time.perf_counter()
            try:
                answer = await self._call(mv, inputs)
            except Exception as exc:
                if len(batch) == 1 or getattr(exc, "kind", None) in _NOT_RETRIED:
                    for it in batch:
                        _fail(it.future, exc)
                    return
                q.retried_batches += 1
                await self._one_by_one(q, mv, batch)
                return
            worker, outputs = time.perf_counter() - began, answer.outputs
            for it in batch:
                it.worker, it.answer = worker, answer
            if len(batch) == 1:
                _resolve(batch[0].future, outputs)
                return
            if not outputs or any(
                np.ndim(o) == 0 or np.shape(o)[0] != rows for o in outputs
            ):
                # Outputs without a per-row first dimension cannot be split: run alone.
                q.retried_batches += 1
                await self._one_by_one(q, mv, batch)
                return
            start = 0
            for it in batch:
                stop = start + it.rows
                _resolve(it.future, [o[start:stop] for o in outputs])
                start = stop
        except BaseException as exc:  # never leave a caller waiting forever
            for it in batch:
                _fail(it.future, exc if isinstance(exc, Exception) else
                      RuntimeError("batch cancelled"))
            if not isinstance(exc, Exception):
                raise
        finally:
            q.in_flight -= 1
            if q.pending:
                self._kick(q, mv)

    async def _one_by_one(self, q: _Queue, mv: ModelRef, batch: list[_Item]) -> None:
        """Run each member alone (after a failed or unsplittable stacked call)."""

        async def one(it: _Item) -> None:
            if it.future.done():
                return
            q.calls += 1
            began = time.perf_counter()
            try:
                answer = await self._call(mv, it.inputs)
                it.worker, it.answer = time.perf_counter() - began, answer
                _resolve(it.future, answer.outputs)
            except Exception as exc:
                _fail(it.future, exc)

        await asyncio.gather(*(one(it) for it in batch))


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
