"""Batching you can see and set: per model version the batch sizes (rows per worker
call) and the queue waits as histograms in the status and the metrics; a model's own
batching settings in params.json (max_batch_size, batch_timeout_ms, off), refused at
upload with a 400 naming the setting when the batcher could not use them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import TFaaSCaller, metric_value, scrape
from test_batching import FakeModel, FakeWorker

from tfaas_jupyter.server.batching import BatchConfig, Batcher
from tfaas_jupyter.server.batchparams import check_batching_params
from tfaas_jupyter.server.errors import BadRequest
from tfaas_jupyter.server.metrics_batching import batching_metrics

pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize(("params", "named"), [
    ({"batching": "off"}, "'batching' must be true or false"),
    ({"max_batch_size": 0}, "'max_batch_size' must be an integer >= 1"),
    ({"max_batch_size": 2.5}, "'max_batch_size' must be an integer >= 1"),
    ({"max_batch_size": True}, "'max_batch_size' must be an integer >= 1"),
    ({"batch_timeout_ms": -1}, "'batch_timeout_ms' must be a number >= 0"),
    ({"batch_timeout_ms": "5"}, "'batch_timeout_ms' must be a number >= 0"),
    ({"batch_timeout_ms": 1e6}, "'batch_timeout_ms' must be at most 60000 ms"),
    ({"batch_timeout_ms": 1, "max_queue_delay_us": 5}, "give one"),
    ({"max_in_flight": 0}, "'max_in_flight' must be an integer >= 1"),
])
def test_unusable_batching_settings_are_named(params: dict[str, Any], named: str) -> None:
    with pytest.raises(BadRequest) as caught:
        check_batching_params(params)
    assert named in caught.value.message


def test_usable_settings_pass_and_batch_timeout_is_the_queue_delay() -> None:
    for params in ({}, {"batching": False}, {"max_batch_size": 8, "batch_timeout_ms": 2.5},
                   {"max_queue_delay_us": 100, "max_in_flight": 3}):
        check_batching_params(params)
    config = BatchConfig().overridden({"batch_timeout_ms": 2.5, "max_batch_size": 8})
    assert (config.max_queue_delay_us, config.max_batch_size) == (2500, 8)
    assert BatchConfig(max_queue_delay_us=7).overridden({}).max_queue_delay_us == 7


@pytest.mark.asyncio
async def test_histograms_count_each_calls_rows_and_each_requests_wait() -> None:
    worker = FakeWorker()
    batcher = Batcher(worker, max_in_flight=1, max_batch_size=8)  # type: ignore[arg-type]
    mv = FakeModel()
    worker.gate = asyncio.Event()
    sizes = [1, 2, 3, 1, 4, 2]
    calls = [asyncio.ensure_future(batcher.predict(mv, [np.ones((n, 3), np.float32)]))
             for n in sizes]
    await asyncio.sleep(0.01)  # the first goes at once, the rest queue behind it
    worker.gate.set()
    await asyncio.gather(*calls)
    doc = batcher.status()["models"]["m/1"]
    rows_per_call = worker.calls  # what the worker saw: the independent count
    assert sum(rows_per_call) == sum(sizes) and len(rows_per_call) < len(sizes)
    hist = doc["batch_size_histogram"]
    assert hist["count"] == len(rows_per_call) and hist["sum"] == sum(rows_per_call)
    cumulative = dict((le, n) for le, n in hist["buckets"])
    for bound in (1.0, 2.0, 4.0, 8.0):
        assert cumulative[repr(bound)] == sum(1 for r in rows_per_call if r <= bound)
    waits = doc["queue_wait_seconds_histogram"]
    assert waits["count"] == len(sizes)
    assert dict((le, n) for le, n in waits["buckets"])["0.0"] == 1  # only the first
    assert doc["queue_wait_max_ms"] >= 10 * 0.9  # the queued ones waited for the gate
    families = {f.name: f for f in batching_metrics(batcher.status())}
    count = [s for s in families["tfaas_batch_size_rows"].samples
             if s.name.endswith("_count")]
    assert [(s.labels, s.value) for s in count] == \
        [({"model": "m", "version": "1"}, len(rows_per_call))]


async def test_a_models_settings_reach_its_batcher_and_bad_ones_are_refused(
        tfaas: TFaaSCaller, seed_dir: Path) -> None:
    reply = await tfaas.upload_dir(seed_dir, "vk", max_batch_size=0)
    assert reply.code == 400
    assert "'max_batch_size' must be an integer >= 1" in reply.json()["error"]
    reply = await tfaas.upload_dir(seed_dir, "vk", batching="no")
    assert reply.code == 400 and "'batching'" in reply.json()["error"]
    await tfaas.uploaded(directory=seed_dir, name="vk", max_batch_size=4,
                         batch_timeout_ms=1.5)
    rows = [[0.25] * 42] * 3
    replies = await asyncio.gather(*(tfaas.predict({"model": "vk", "values": rows})
                                     for _ in range(4)))
    assert all(r.code == 200 for r in replies), [r.body for r in replies]
    status = (await tfaas.call("GET", "status")).json()
    (doc,) = status["batching"]["models"].values()
    assert (doc["max_batch_size"], doc["max_queue_delay_us"]) == (4, 1500)
    hist = doc["batch_size_histogram"]
    assert hist["sum"] == 12 and hist["count"] == doc["worker_calls"]
    assert dict((le, n) for le, n in hist["buckets"])["+Inf"] == doc["worker_calls"]
    assert doc["queue_wait_seconds_histogram"]["count"] == 4
    samples = scrape((await tfaas.call("GET", "metrics")).body.decode())
    assert metric_value(samples, "tfaas_batch_size_rows_sum", model="vk") == 12
    assert metric_value(samples, "tfaas_batch_queue_wait_seconds_count", model="vk") == 4
    assert json.dumps(doc)  # the status stays JSON
