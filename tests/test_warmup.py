"""Warm-up: every load of a version ends with a run on a warm-up batch (the params'
example row, or zeros, at batch size 1 and the batcher's largest) before any request
is served from it; the time shows in the upload's answer and the status; a label
moves only once its new version is loaded and warm; a crashed worker's versions are
loaded and warmed again in the background."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from typing import Any

import numpy as np
import pytest
import tfmodels
from helpers import TFaaSCaller
from test_server_timing import stages

from tfaas_jupyter.server.batching import BatchConfig
from tfaas_jupyter.server.modelref import ModelRef
from tfaas_jupyter.server.warmup import LoadedVersions, WarmupPolicy

pytestmark = pytest.mark.timeout(600)


def test_warmup_batch_sizes_follow_the_batching_policy() -> None:
    policy = WarmupPolicy(BatchConfig(max_batch_size=64))
    assert policy.sizes({}) == [1, 64]
    assert policy.sizes({"max_batch_size": 8}) == [1, 8]
    assert policy.sizes({"batching": False}) == [1]
    assert policy.sizes({"max_batch_size": 1}) == [1]


def test_the_warmup_batch_is_the_example_row_or_zeros() -> None:
    from tfaas_jupyter.worker.warmup import warmup_batch

    inputs = [{"name": "a", "dtype": "float32", "shape": [None, 2]},
              {"name": "b", "dtype": "int64", "shape": [None, 1, 2]}]
    zeros = warmup_batch(inputs, {}, 3)
    assert zeros is not None
    assert [(z.shape, z.dtype.name) for z in zeros] == [((3, 2), "float32"),
                                                       ((3, 1, 2), "int64")]
    assert not any(z.any() for z in zeros)
    example = warmup_batch(inputs, {"example": [1.5, 2, 3, 4]}, 2)
    assert example is not None
    np.testing.assert_array_equal(example[0], [[1.5, 2], [1.5, 2]])
    np.testing.assert_array_equal(example[1], [[[3, 4]], [[3, 4]]])
    assert example[1].dtype == np.int64
    # an example that does not fit, or names its keys: zeros
    assert not warmup_batch(inputs, {"example": [1, 2]}, 1)[0].any()  # type: ignore[index]
    keyed = {"example": {"keys": ["b", "a"], "values": [1, 2, 3, 4]}}
    assert not warmup_batch(inputs, keyed, 1)[0].any()  # type: ignore[index]
    assert warmup_batch([{"name": "c", "dtype": "float32", "shape": [None, None]}], {}, 1) \
        is None


def test_loaded_versions_keep_the_most_recent_and_forget_unloaded_ones() -> None:
    versions = LoadedVersions(2)
    refs = [ModelRef(key=f"m@{i}", path="p", format="graphdef") for i in range(3)]
    for ref in refs:
        versions.loaded(ref)
    versions.unloaded("m@2")
    committed = ModelRef(key="m@1", path="committed", format="graphdef")
    versions.moved(committed)
    versions.moved(ModelRef(key="m@9", path="elsewhere", format="graphdef"))  # not held
    assert versions.forget() == [committed]
    assert versions.forget() == []


@pytest.fixture
def tfaas_config() -> dict[str, Any]:
    return {"cache_size": 2, "max_batch_size": 32}


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> list[tfmodels.Built]:
    root = tmp_path_factory.mktemp("warmup")
    return [tfmodels.make_graphdef(root / f"g{seed}", seed=seed) for seed in (21, 22)]


#: requests at once while a label moves
STREAMS = 3


def row(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(1, tfmodels.N_IN)).astype(np.float32)


async def timed_predict(tfaas: TFaaSCaller, model: str, x: np.ndarray,
                        version: Any = None) -> tuple[Any, float]:
    doc: dict[str, Any] = {"model": model, "values": x[0].tolist()}
    if version is not None:
        doc["version"] = version
    began = time.perf_counter()
    reply = await tfaas.predict(doc)
    elapsed = time.perf_counter() - began
    assert reply.code == 200, reply.body
    return reply, elapsed


async def test_uploads_say_their_warmup_and_the_status_keeps_it(
        tfaas: TFaaSCaller, graphs: list[tfmodels.Built]) -> None:
    reply = await tfaas.upload_dir(graphs[0].path.parent, "g")
    assert reply.code == 200, reply.body
    seconds = reply.json()["warmup_seconds"]
    assert isinstance(seconds, float) and seconds > 0
    worker = (await tfaas.call("GET", "status")).json()["worker"]
    (key,) = worker["loaded"]
    assert worker["warmup_seconds"] == {key: seconds}


async def test_requests_while_a_label_moves_to_a_cold_version_stay_warm(
        tfaas: TFaaSCaller, graphs: list[tfmodels.Built], jp_serverapp) -> None:
    """The worker is stopped (as after an idle timeout) and comes back for requests
    through the label, holding version 2 only; the label moves from version 2 to
    version 1 while requests go through it: each is answered, none slower than 3x a
    warm call, and the label answers version 1 once the move returns."""
    for built in graphs:
        await tfaas.uploaded(directory=built.path.parent, name="g")
    assert (await tfaas.call("PUT", "models/g/labels/prod", b'{"version": 2}')).code == 200
    await jp_serverapp.web_app.settings["tfaas_service"].worker.stop("idle")
    await timed_predict(tfaas, "g", row(0), "prod")  # the worker comes back with version 2
    worker = (await tfaas.call("GET", "status")).json()["worker"]
    assert len(worker["loaded"]) == 1  # version 1 is not loaded
    x = row(3)
    expected = [np.float32(b.reference([x])[0][0, 0]) for b in graphs]
    async def stream(count: int, until: Any = None) -> list[tuple[float, float]]:
        """Requests one after another through the label: ``count`` of them, or as many
        as go out before ``until`` is done; (seconds, answer) of each."""
        seen = []
        while (until is None and len(seen) < count) or (until is not None
                                                         and not until.done()):
            reply, elapsed = await timed_predict(tfaas, "g", x, "prod")
            seen.append((elapsed, reply.json()[0]))
        return seen

    # warm calls as the moving phase sends them: STREAMS at once
    warm = [s for part in await asyncio.gather(*(stream(10) for _ in range(STREAMS)))
            for s in part]
    assert all(answer == expected[1] for _, answer in warm)
    bound = 3 * statistics.median(e for e, _ in warm)

    moving = asyncio.ensure_future(
        tfaas.call("PUT", "models/g/labels/prod", b'{"version": 1}'))
    during = [s for part in await asyncio.gather(*(stream(0, moving)
                                                   for _ in range(STREAMS))) for s in part]
    assert all(answer in expected for _, answer in during)
    assert (await moving).code == 200
    assert len(during) >= STREAMS, "the move took too little time to send requests"
    slow = [e for e, _ in during if e > bound]
    assert not slow, (f"{len(slow)} of {len(during)} requests slower than 3x a warm "
                      f"call ({bound * 1000:.1f} ms): {[round(e * 1000, 1) for e in slow]}")
    reply, _ = await timed_predict(tfaas, "g", x, "prod")
    assert reply.json()[0] == expected[0]
    assert "cold-start" not in stages(reply)


async def test_a_crashed_workers_versions_come_back_warm(
        tfaas: TFaaSCaller, graphs: list[tfmodels.Built]) -> None:
    """SIGKILL the worker: its successor starts and loads and warms the version it
    held in the background, so the first request after it waits for no load, and
    its model time is a warm call's."""
    await tfaas.uploaded(directory=graphs[0].path.parent, name="g")
    x = row(4)
    model_ms = []
    for _ in range(20):
        reply, _ = await timed_predict(tfaas, "g", x)
        model_ms.append(stages(reply)["model"])
    status = (await tfaas.call("GET", "status")).json()
    (key,) = status["worker"]["loaded"]
    pid = status["worker"]["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 300
    while True:  # a status query never starts the worker: the reload does
        worker = (await tfaas.call("GET", "status")).json()["worker"]
        if worker.get("pid") not in (None, pid) and key in (worker.get("loaded") or []):
            break
        assert time.monotonic() < deadline, worker
        await asyncio.sleep(0.2)
    assert worker["restarts"] == 1 and worker["warmup_seconds"].get(key, 0) > 0
    reply, _ = await timed_predict(tfaas, "g", x)
    timing = stages(reply)
    assert "cold-start" not in timing, timing
    assert timing["model"] <= 3 * statistics.median(model_ms) + 1.0, (timing, model_ms)
    np.testing.assert_allclose(reply.json(), graphs[0].reference([x])[0][0], rtol=1e-6)
