"""The memory budget holds its promise: the worker evicts by what each model's load
added to its RSS, a worker whose own memory stays over the budget with nothing left to
evict is restarted between requests, and a budget below the bare worker's size is
refused at its start, naming both numbers."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import tfmodels
from helpers import TFaaSCaller

from tfaas_jupyter.server.modelref import ModelRef
from tfaas_jupyter.server.supervisor import ModelWorker
from tfaas_jupyter.worker.lru import LRU, Outgrown, OverBudget

pytestmark = pytest.mark.timeout(600)

MiB = 1024 * 1024


def test_the_worker_that_outgrew_its_budget_is_told_to_restart() -> None:
    cache: LRU[str, str] = LRU(10, memory_limit=1000)
    cache.put("a", "A", 100)
    # RSS 1050 with c (50) just loaded: over by 50, a (100) goes, and 950 fits
    assert cache.fit("c", 50, rss=1050, bare=200) == ["a"]
    cache.put("a", "A", 100)
    # 1200 less a's 100 is still over, with nothing more to evict: the worker itself
    # has grown (1050 now, 200 when it started); a new one (200 + 50) would hold c:
    # a restart, not a refusal
    with pytest.raises(Outgrown, match="more than when it started"):
        cache.fit("c", 50, rss=1200, bare=200)
    assert cache.keys() == []
    # a model that does not fit even in a new worker is refused, naming that worker
    with pytest.raises(OverBudget, match="it takes 200 MiB itself"):
        LRU(10, memory_limit=1000 * MiB).fit("d", 900 * MiB, rss=1500 * MiB, bare=200 * MiB)


async def _poll(what: Any, until: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = await what()
        if until(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_a_worker_over_its_budget_by_more_than_its_models_restarts_between_requests(
    built: dict[str, Any]
) -> None:
    graphdef = built["graphdef"]
    model = ModelRef(key="g", path=str(graphdef.path), format="graphdef",
                     params=graphdef.params)
    x = np.random.default_rng(3).normal(size=(4, tfmodels.N_IN)).astype(np.float32)
    worker = ModelWorker(threads=1, heartbeat_timeout=1.0)  # a heartbeat every 0.25 s
    try:
        await worker.load(model)
        pid = worker.pid
        assert pid is not None
        rss = psutil.Process(pid).memory_info().rss
        # the budget as a worker that grew past it sees it: over by far more than its
        # one small model takes, so evicting it would not do: restarted between requests
        worker.memory_limit = rss // 2
        status = await _poll(worker.status, lambda s: s["state"] != "running", 30)
        assert status["state"] == "stopped", status
        assert "by more than its models take" in status["last_error"], status
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        # the next request starts a new worker, which loads its model again
        worker.memory_limit = 0
        answer = await worker.predict(model, [x])
        np.testing.assert_allclose(answer.outputs[0], graphdef.reference([x])[0], rtol=1e-5)
        assert worker.pid not in (None, pid)
    finally:
        await worker.stop()


def _bare_worker_rss() -> int:
    """RSS of a model worker that holds no model, measured from outside it."""
    async def measure() -> int:
        worker = ModelWorker(threads=1)
        try:
            pid = (await worker.status(start=True))["pid"]
            return int(psutil.Process(pid).memory_info().rss)
        finally:
            await worker.stop()

    return asyncio.run(measure())


@pytest.mark.parametrize("tfaas_config", [{"worker_memory_limit": 1 * MiB}])
async def test_a_budget_below_the_bare_worker_is_refused_at_its_start(
    tfaas: TFaaSCaller, seed_dir: Path
) -> None:
    reply = await tfaas.upload_dir(seed_dir, "vk")
    assert reply.code == 503, reply.body
    error = reply.json()["error"]
    assert "1 MiB" in error and "worker_memory_limit" in error, error
    bare = re.search(r"before loading any model, (\d+) MiB", error)
    assert bare is not None, error
    # no retry loop: the worker is not started again, and status says why
    status = (await tfaas.call("GET", "status")).json()["worker"]
    assert status["state"] == "failed" and status["last_error"] == error, status
    again = await tfaas.upload_dir(seed_dir, "vk2")
    assert again.code == 503 and again.json()["error"] == error
    assert (await tfaas.call("GET", "models")).json() == []
    said = int(bare.group(1)) * MiB
    measured = await asyncio.get_running_loop().run_in_executor(None, _bare_worker_rss)
    assert abs(said - measured) < measured * 0.25, (said, measured)
