"""The batcher: unit tests with a fake worker (fast, deterministic), then the real thing.

The unit tests cover the failure classes other servers shipped (see the reference
notes on Triton, MLServer and BentoML): responses crossed between requests, rows of
different shapes stacked together, one bad request failing its whole batch, the
delay timer firing early or never, and batches over the size bound.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tfaas_jupyter.server.batching import Batcher
from tfaas_jupyter.server.errors import ErrorKind
from tfaas_jupyter.server.modelref import ModelRef
from tfaas_jupyter.server.supervisor import ModelError, WorkerCrashed
from tfaas_jupyter.server.timing import ModelAnswer

#: The fake-worker tests run on pytest-asyncio's loop; the server test must not (it
#: runs on pytest-jupyter's loop, which serves the requests).
unit = pytest.mark.asyncio


def FakeModel(name: str = "m", params: dict[str, Any] | None = None) -> ModelRef:
    """Version 1 of model ``name``, as the service hands it to the batcher."""
    return ModelRef(key=f"{name}@1", path="fake", format="fake", params=params or {},
                    name=name, version=1)


class FakeWorker:
    """``predict`` answers each row's sum and first value; calls can be held at a gate.

    A row whose first value is negative makes the whole call fail (a bad input), as
    TensorFlow refusing one request's data would fail the stacked call.
    """

    def __init__(self) -> None:
        self.calls: list[int] = []  # rows per call
        self.shapes: list[tuple[int, ...]] = []
        self.gate: asyncio.Event | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.crash = False
        #: calls of more rows than this run out of memory
        self.memory_rows: int | None = None

    async def predict(self, model: ModelRef, inputs: list[np.ndarray]) -> ModelAnswer:
        x = inputs[0]
        self.calls.append(x.shape[0])
        self.shapes.append(x.shape)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        if self.crash:
            raise WorkerCrashed("the worker died")
        if self.memory_rows is not None and x.shape[0] > self.memory_rows:
            raise ModelError("the model ran out of memory", ErrorKind.OUT_OF_MEMORY)
        flat = x.reshape(x.shape[0], -1)
        if (flat[:, 0] < 0).any():
            raise ModelError("negative input", ErrorKind.BAD_INPUT)
        return ModelAnswer([flat.sum(axis=1, keepdims=True), flat[:, :1].copy()])


async def _held(worker: FakeWorker, batcher: Batcher, mv: FakeModel,
                requests: list[list[np.ndarray]]) -> list[Any]:
    """Hold the first call in flight, queue ``requests`` behind it, then release."""
    worker.gate = asyncio.Event()
    first = asyncio.ensure_future(batcher.predict(mv, [np.ones((1, 3), np.float32)]))
    await asyncio.sleep(0)
    tasks = [asyncio.ensure_future(batcher.predict(mv, r)) for r in requests]
    await asyncio.sleep(0)
    worker.gate.set()
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    worker.gate = None
    return results[1:]


def _row(value: float, width: int = 3) -> np.ndarray:
    return np.full((1, width), value, dtype=np.float32)


@unit
async def test_idle_model_dispatches_at_once() -> None:
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=1)
    out = await batcher.predict(FakeModel(), [_row(2.0)])
    assert worker.calls == [1]
    assert out[0].tolist() == [[6.0]]


@unit
async def test_concurrent_requests_get_their_own_rows() -> None:
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=1, max_batch_size=1000)
    mv = FakeModel()
    requests = [[_row(float(i))] for i in range(200)]
    results = await _held(worker, batcher, mv, requests)
    assert worker.calls == [1, 200]  # one held call, then everything as one batch
    for i, out in enumerate(results):
        assert out[0].tolist() == [[3.0 * i]]
        assert out[1].tolist() == [[float(i)]]
    status = batcher.status()["models"]["m/1"]
    assert status["max_requests_per_call"] == 200
    assert status["requests"] == 201 and status["worker_calls"] == 2


@unit
async def test_multi_row_requests_in_a_batch() -> None:
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=1)
    mv = FakeModel()
    sizes = [1, 5, 2, 7, 1]
    requests, start = [], 0
    for n in sizes:
        requests.append([np.arange(start, start + n, dtype=np.float32)[:, None]
                         .repeat(3, axis=1)])
        start += n
    results = await _held(worker, batcher, mv, requests)
    assert worker.calls == [1, sum(sizes)]
    for req, out in zip(requests, results):
        assert out[1].ravel().tolist() == req[0][:, 0].tolist()
        assert out[0].shape == (req[0].shape[0], 1)


@unit
async def test_different_shapes_are_not_stacked() -> None:
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=1)
    mv = FakeModel()
    requests = [[_row(1.0, 3)], [_row(2.0, 4)], [_row(3.0, 3)],
                [_row(4.0, 4)], [np.full((1, 3), 5, np.float64)]]
    results = await _held(worker, batcher, mv, requests)
    assert sorted(worker.shapes[1:]) == [(1, 3), (2, 3), (2, 4)]
    assert [r[0].tolist() for r in results] == [[[3.0]], [[8.0]], [[9.0]], [[16.0]], [[15.0]]]


@unit
async def test_a_bad_request_fails_alone() -> None:
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=1)
    mv = FakeModel()
    requests = [[_row(1.0)], [_row(-1.0)], [_row(2.0)]]
    results = await _held(worker, batcher, mv, requests)
    assert results[0][0].tolist() == [[3.0]]
    assert isinstance(results[1], ModelError)
    assert results[2][0].tolist() == [[6.0]]
    assert batcher.status()["models"]["m/1"]["retried_batches"] == 1


@unit
async def test_a_batch_out_of_memory_is_retried_alone() -> None:
    """Stacking must not make requests fail that fit alone: each member runs by itself."""
    worker = FakeWorker()
    worker.memory_rows = 1
    batcher = Batcher(worker, max_in_flight=1)
    results = await _held(worker, batcher, FakeModel(), [[_row(1.0)], [_row(2.0)]])
    assert [r[1].item() for r in results] == [1.0, 2.0]
    assert worker.calls == [1, 2, 1, 1]
    assert batcher.status()["models"]["m/1"]["retried_batches"] == 1


@pytest.mark.parametrize("kind, status", [
    ("input", 400), ("model", 500), ("oom", 507), ("timeout", 504), ("unavailable", 503),
    ("a kind from a newer worker", 500),
])
def test_each_kind_of_worker_error_has_one_status(kind: str, status: int) -> None:
    error = ModelError("the model's own words", kind)
    assert error.status == status and error.message == "the model's own words"
    assert WorkerCrashed("gone").status == 503


@unit
async def test_worker_crash_fails_the_batch_without_retries() -> None:
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=1)
    mv = FakeModel()
    worker.crash = True
    results = await _held(worker, batcher, mv, [[_row(1.0)], [_row(2.0)]])
    assert all(isinstance(r, WorkerCrashed) for r in results)
    assert worker.calls == [1, 2]  # no one-by-one retry of a crash


@unit
async def test_oversized_requests_go_alone_and_batches_are_bounded() -> None:
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=1, max_batch_size=4)
    mv = FakeModel()
    big = np.arange(10, dtype=np.float32)[:, None].repeat(3, axis=1)
    results = await _held(worker, batcher, mv, [[_row(1.0)], [big], [_row(7.0)]])
    assert results[1][1].ravel().tolist() == list(range(10))
    assert [r[1].item() for r in (results[0], results[2])] == [1.0, 7.0]
    assert worker.calls == [1, 2, 10]  # the small ones stacked, the big one alone
    worker.calls.clear()
    results = await _held(worker, batcher, mv, [[_row(float(i))] for i in range(10)])
    assert [r[1].item() for r in results] == list(range(10))
    assert max(worker.calls) <= 4 and sum(worker.calls) == 11
    assert batcher.status()["models"]["m/1"]["oversized_requests"] == 1


@unit
async def test_max_in_flight_is_respected() -> None:
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=2)
    mv = FakeModel()
    worker.gate = asyncio.Event()
    tasks = [asyncio.ensure_future(batcher.predict(mv, [_row(float(i))])) for i in range(20)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert worker.in_flight == 2
    worker.gate.set()
    results = await asyncio.gather(*tasks)
    assert [r[1].item() for r in results] == list(range(20))
    assert worker.max_in_flight == 2


@unit
async def test_no_delay_means_no_waiting() -> None:
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=1, max_queue_delay_us=0)
    mv = FakeModel()
    task = asyncio.ensure_future(batcher.predict(mv, [_row(1.0)]))
    for _ in range(5):  # a few loop turns, no timer
        await asyncio.sleep(0)
    assert task.done() and worker.calls == [1]


@unit
async def test_delay_collects_and_a_lone_request_is_still_answered() -> None:
    # a 0.5 s window: the requests below arrive within a few loop turns of each other,
    # far inside it however slow the machine; a lone request waits the window out
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=1, max_queue_delay_us=500_000)
    mv = FakeModel()
    loop = asyncio.get_running_loop()
    # a lone request waits for the delay (not forever, not zero)
    started = loop.time()
    out = await asyncio.wait_for(batcher.predict(mv, [_row(1.0)]), timeout=30)
    assert out[0].item() == 3.0
    assert loop.time() - started >= 0.45
    # requests arriving within the delay go out together
    worker.calls.clear()
    tasks = [asyncio.ensure_future(batcher.predict(mv, [_row(float(i))])) for i in range(5)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert worker.calls == []  # still waiting for more
    tasks += [asyncio.ensure_future(batcher.predict(mv, [_row(float(i))]))
              for i in range(5, 8)]
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    assert [r[1].item() for r in results] == list(range(8))
    assert worker.calls == [8]


@unit
async def test_a_full_queue_does_not_wait_for_the_delay() -> None:
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=1, max_batch_size=4, max_queue_delay_us=10**9)
    mv = FakeModel()
    tasks = [asyncio.ensure_future(batcher.predict(mv, [_row(float(i))])) for i in range(4)]
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert [r[1].item() for r in results] == list(range(4))
    assert worker.calls == [4]


@unit
async def test_params_override_and_batching_off() -> None:
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=1)
    off = FakeModel(name="off", params={"batching": False})
    small = FakeModel(name="small", params={"max_batch_size": 2})
    results = await _held(worker, batcher, off, [[_row(float(i))] for i in range(5)])
    assert [r[1].item() for r in results] == list(range(5))
    assert worker.calls == [1] * 6
    worker.calls.clear()
    await _held(worker, batcher, small, [[_row(float(i))] for i in range(5)])
    assert max(worker.calls) == 2
    assert batcher.status()["models"]["small/1"]["max_batch_size"] == 2


@unit
async def test_unsplittable_outputs_run_alone() -> None:
    class Reducing(FakeWorker):
        async def predict(self, *args: Any) -> ModelAnswer:
            out = (await super().predict(*args)).outputs
            return ModelAnswer([out[0].sum(keepdims=True)[0]])  # one value, whatever the rows

    worker = Reducing()
    batcher = Batcher(worker, max_in_flight=1)
    results = await _held(worker, batcher, FakeModel(), [[_row(1.0)], [_row(2.0)]])
    assert [r[0].tolist() for r in results] == [[3.0], [6.0]]


@unit
async def test_cancelled_caller_does_not_break_the_queue() -> None:
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=1)
    mv = FakeModel()
    worker.gate = asyncio.Event()
    first = asyncio.ensure_future(batcher.predict(mv, [_row(0.0)]))
    await asyncio.sleep(0)
    gone = asyncio.ensure_future(batcher.predict(mv, [_row(1.0)]))
    kept = asyncio.ensure_future(batcher.predict(mv, [_row(2.0)]))
    await asyncio.sleep(0)
    gone.cancel()
    worker.gate.set()
    assert (await kept)[1].item() == 2.0
    assert (await first)[1].item() == 0.0
    assert worker.calls == [1, 1]


# -- the real worker and server ---------------------------------------------------


@pytest.mark.timeout(600)
async def test_batching_in_the_real_server(tfaas: Any, seed_dir: Path) -> None:
    """Concurrent /json requests are stacked (the status says so) and each gets its own
    answer: the same as the model gives the row alone."""
    reply = await tfaas.upload_dir(seed_dir, "vk")
    assert reply.code == 200, reply.body
    rng = np.random.default_rng(0)
    rows = rng.random((64, 42), dtype=np.float32).round(3)
    alone = []
    for row in rows[:8]:
        r = await tfaas.predict({"model": "vk", "values": row.tolist()})
        assert r.code == 200, r.body
        alone.append(r.json())

    async def one(i: int) -> Any:
        r = await tfaas.predict({"model": "vk", "values": rows[i].tolist()})
        assert r.code == 200, r.body
        return r.json()

    for _ in range(5):  # batching depends on timing; a few rounds make it certain
        answers = await asyncio.gather(*(one(i) for i in range(len(rows))))
        np.testing.assert_allclose(answers[:8], alone, rtol=1e-5, atol=1e-6)
        status = json.loads((await tfaas.call("GET", "status")).body)
        stats = status["batching"]["models"]["vk/1"]
        if stats["max_requests_per_call"] > 1:
            break
    assert stats["max_requests_per_call"] > 1, stats
    assert stats["stacked_calls"] >= 1
    # a multi-row request stacked with others still answers its rows in order
    many = await tfaas.predict({"model": "vk", "values": rows[:8].tolist()})
    np.testing.assert_allclose(many.json(), alone, rtol=1e-5, atol=1e-6)
