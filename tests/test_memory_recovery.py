"""The memory budget on real workers, their RSS read from outside (/proc/PID/status):
an unloaded model gives its memory back, a load that fits only in a new worker restarts
the worker first, and Keras models cycled through by uploads and predictions under a
small budget keep being answered, exactly, while the worker never stays over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxmodels
import pytest
import tfmodels
from test_decoder_limits import rss

from tfaas_jupyter.server.modelref import ModelRef
from tfaas_jupyter.server.supervisor import ModelWorker

pytestmark = pytest.mark.timeout(900)

MiB = 1024 * 1024


def _ref(key: str, built: tfmodels.Built) -> ModelRef:
    return ModelRef(key=key, path=str(built.path), format=built.fmt, params=built.params)


def _rows(n: int, seed: int, n_in: int = 512) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, n_in)).astype(np.float32)


def _assert_exact(outputs: Any, built: tfmodels.Built, x: np.ndarray) -> None:
    """The answer is the numpy forward pass of the model's weights (float32 sums)."""
    np.testing.assert_allclose(np.asarray(outputs), built.reference([x])[0],
                               rtol=1e-4, atol=1e-5)


async def test_an_unloaded_model_gives_its_memory_back(tmp_path: Path) -> None:
    small = tfmodels.make_dense_keras(tmp_path, hidden=64, seed=1)
    big = tfmodels.make_dense_keras(tmp_path, hidden=6144, seed=2)  # 12 MiB of weights
    worker = ModelWorker(threads=1)
    try:
        await worker.load(_ref("small/1", small))  # what Keras sets up once stays
        await worker.load(_ref("big/1", big))
        pid = worker.pid
        assert pid is not None
        held = rss(pid)
        # as the heartbeat's eviction of a worker over its budget does
        await worker.unload("big/")
        freed = held - rss(pid)
        assert freed > 9 * MiB, f"unloading a 12 MiB model freed {freed / MiB:.1f} MiB"
    finally:
        await worker.stop()


async def test_a_load_that_fits_only_in_a_new_worker_restarts_it_first(
    tmp_path: Path
) -> None:
    """Converting an ONNX model leaves its converter's packages in the worker (tens of
    MiB that no model accounts for): a worker grown so has no room for a model that a
    new worker holds easily, so the load restarts it and loads there."""
    big = tfmodels.make_dense_keras(tmp_path / "keras", hidden=12288, seed=3)  # 24 MiB
    # one ONNX file per worker: a conversion writes its SavedModel beside the file
    onnx_files = []
    for n in range(2):
        (tmp_path / f"onnx{n}").mkdir()
        onnx_files.append(onnxmodels.make_mlp(tmp_path / f"onnx{n}" / "mlp.onnx"))
    worker = ModelWorker(threads=1)
    try:
        # no budget yet: how big the bare worker is, and what a conversion leaves
        status = await worker.status(start=True)
        bare, pid = int(status["bare_rss"]), status["pid"]
        await worker.load(ModelRef(key="onnx/1", path=str(onnx_files[0]), format="onnx"))
        await worker.unload("onnx/")
        left = rss(pid) - bare
        assert left > 40 * MiB, f"an ONNX conversion left only {left / MiB:.0f} MiB"
        await worker.stop()

        # a budget 16 MiB over that: the big model (24 MiB, and Keras's first-load
        # setup) fits in a new worker with room to spare, not in one grown so
        worker.memory_limit = bare + left + 16 * MiB
        await worker.load(ModelRef(key="onnx/2", path=str(onnx_files[1]), format="onnx"))
        await worker.unload("onnx/")
        grown = worker.pid
        assert grown is not None and rss(grown) <= worker.memory_limit
        x = _rows(5, seed=4)
        answer = await worker.predict(_ref("big/1", big), [x])
        _assert_exact(answer.outputs[0], big, x)
        assert worker.pid not in (None, grown), "the load did not restart the worker"
        status = await worker.status()
        assert status["loaded"] == ["big/1"] and status["restarts"] == 2, status
        assert "more than when it started" in status["last_error"], status
        assert rss(worker.pid) <= worker.memory_limit
    finally:
        await worker.stop()
